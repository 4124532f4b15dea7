"""The layer rule of the README's code map, checked by tools/check_layers.py on the real tree."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "check_layers.py"


def _tool():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("check_layers", TOOL)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_module_imports_a_higher_layer() -> None:
    out = subprocess.run([sys.executable, str(TOOL)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert ", 0 upward" in out.stderr


def test_the_checker_finds_upward_and_hidden_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "edge_trt_ros"
    for sub in ("gpu", "engines", "ros"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "gpu" / "runtime.py").write_text(
        "def f():\n    from edge_trt_ros.engines.base import EngineError\n")
    (pkg / "engines" / "base.py").write_text(
        "import importlib\nm = importlib.import_module('edge_trt_ros.ros.node')\n")
    (pkg / "engines" / "ok.py").write_text("from edge_trt_ros.gpu import runtime\n"
                                           "from . import base\n")
    (pkg / "ros" / "node.py").write_text("from ..engines import ok\n")
    (pkg / "mystery.py").write_text("")
    violations, edges = _tool().check(tmp_path)
    text = "\n".join(violations)
    assert "gpu/runtime.py:2: edge_trt_ros.gpu.runtime (layer 1" in text
    assert "engines/base.py:2: edge_trt_ros.engines.base (layer 2" in text
    assert "edge_trt_ros.mystery has no layer" in text
    assert len(violations) == 3, violations
    assert "edge_trt_ros.ros.node -> edge_trt_ros.engines" in edges  # relative import
