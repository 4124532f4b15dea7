"""The ``edge-trt`` entry point: one logging set-up, clean errors instead of tracebacks."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from edge_trt_ros.cli import main


def test_missing_model_is_a_one_line_error_not_a_traceback(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "edge_trt_ros.cli", "info",
                          str(tmp_path / "nope.onnx")], capture_output=True, text=True)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert out.stderr.strip() == f"edge-trt info: error: model not found: {tmp_path}/nope.onnx"


def test_unreadable_model_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "garbage.onnx"
    bad.write_bytes(b"\x00not an onnx file" * 10)
    assert main(["info", str(bad)]) == 2
    assert f"{bad} is not a readable ONNX model" in capsys.readouterr().err


@pytest.mark.parametrize(("flags", "level"), [([], logging.INFO), (["-v"], logging.DEBUG),
                                              (["-q"], logging.WARNING)])
def test_verbosity_flags_set_the_library_log_level(
    flags: list[str], level: int, tmp_path: Path
) -> None:
    main([*flags, "info", str(tmp_path / "absent.onnx")])
    assert logging.getLogger("edge_trt_ros.engines").getEffectiveLevel() == level


def test_every_subcommand_is_registered() -> None:
    from edge_trt_ros.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == {"info", "evaluate", "power", "variants", "inspect",
                                "benchmark", "audit"}
