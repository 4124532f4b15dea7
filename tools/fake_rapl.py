#!/usr/bin/env python3
"""Run a command on a machine that looks like it has a RAPL power sensor.

    python tools/fake_rapl.py --watts 18 -- scripts/test.sh

Builds a fixture tree (``sys/class/powercap/intel-rapl:0`` whose ``energy_uj`` counter
advances at ``--watts``, plus this machine's ``/proc/cpuinfo``, ``meminfo`` and ``stat``),
points ``EDGE_TRT_SYSFS_ROOT`` at it and runs the command. It shows that the package (and
its tests) behave on a machine with a real sensor: figures measured, not flagged estimated.
The counter wraps at ``max_energy_range_uj`` like the real one, so wrap handling runs too.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT_ENV = "EDGE_TRT_SYSFS_ROOT"  # edge_trt_ros.power.sysfs.ROOT_ENV (no import: no venv needed)
MAX_RANGE_UJ = 262_143_328_850  # what an AMD/Intel package zone reports


def make_tree(root: Path) -> Path:
    zone = root / "sys/class/powercap/intel-rapl:0"
    zone.mkdir(parents=True)
    (zone / "name").write_text("package-0\n")
    (zone / "max_energy_range_uj").write_text(f"{MAX_RANGE_UJ}\n")
    (zone / "energy_uj").write_text(f"{MAX_RANGE_UJ - 5_000_000}\n")  # wraps within seconds
    (root / "proc").mkdir()
    for name in ("cpuinfo", "meminfo", "stat"):
        shutil.copy(f"/proc/{name}", root / "proc" / name)
    return zone / "energy_uj"


def run_counter(path: Path, watts: float, stop: threading.Event, period_s: float = 0.02) -> None:
    """Advance the counter at ``watts`` (atomic rename, so a reader never sees half a line)."""
    value = int(path.read_text())
    last = time.monotonic()
    while not stop.wait(period_s):
        now = time.monotonic()
        value = (value + int(watts * (now - last) * 1e6)) % MAX_RANGE_UJ
        last = now
        tmp = path.with_name(".energy_uj.tmp")
        tmp.write_text(f"{value}\n")
        os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watts", type=float, default=18.0, help="package power to simulate")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give a command after --")
    with tempfile.TemporaryDirectory(prefix="fake_rapl.") as tmp:
        counter = make_tree(Path(tmp))
        stop = threading.Event()
        thread = threading.Thread(target=run_counter, args=(counter, args.watts, stop),
                                  daemon=True)
        thread.start()
        print(f"fake_rapl: {ROOT_ENV}={tmp} (intel-rapl:0 at {args.watts:g} W)", file=sys.stderr)
        try:
            return subprocess.call(command, env={**os.environ, ROOT_ENV: tmp})
        finally:
            stop.set()
            thread.join()


if __name__ == "__main__":
    sys.exit(main())
