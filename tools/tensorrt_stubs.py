#!/usr/bin/env python3
"""Turn the tensorrt-stubs wheel into a stub directory mypy can read (``mypy_path``).

Why not ``pip install tensorrt-stubs``: it requires the ``tensorrt`` wheel (which downloads
from NVIDIA's index), its stub-only ``tensorrt/`` directory then imports as an empty
namespace package (so "is TensorRT installed?" answers yes), and mypy ignores it anyway
(no ``py.typed``). Version 10.13.0.35.1 also has three defects that stop mypy parsing it:
parameters named ``in``, a module-level ``bool: DataType`` that shadows the builtin in
every ``-> bool``, and a required parameter after defaults in ``add_scale_nd``. This tool
reads the wheel (a zip), fixes exactly those, and writes the ``.pyi`` files under OUT.

    python tools/tensorrt_stubs.py tensorrt_stubs-10.13.0.35.1-py3-none-any.whl OUT
"""

from __future__ import annotations

import re
import shutil
import sys
import zipfile
from pathlib import Path

PACKAGES = ("tensorrt/", "tensorrt_bindings/")


def fix(text: str) -> str:
    """The three edits that make the 10.13 stub parse and mean what it says."""
    lines = ["import builtins"]
    for line in text.split("\n"):
        if not line.startswith("bool:"):
            line = re.sub(r"(?<![\w.])bool(?!\w)", "builtins.bool", line)
        line = re.sub(r"([(,] *)in: ", r"\1in_: ", line)
        line = line.replace("power: Weights = None, channel_axis: int)",
                            "power: Weights = None, channel_axis: int = ...)")
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    wheel, out = Path(argv[0]), Path(argv[1])
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if n.startswith(PACKAGES) and n.endswith(".pyi")]
        if "tensorrt_bindings/tensorrt.pyi" not in names:
            print(f"{wheel}: no tensorrt_bindings/tensorrt.pyi; not a tensorrt-stubs wheel?",
                  file=sys.stderr)
            return 1
        for name in names:
            text = zf.read(name).decode()
            if name == "tensorrt_bindings/tensorrt.pyi":
                text = fix(text)
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(text)
    (tmp / "tensorrt_libs").mkdir()
    (tmp / "tensorrt_libs" / "__init__.pyi").write_text("")  # imported by the stubs
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    print(f"wrote {len(names) + 1} stub files to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
