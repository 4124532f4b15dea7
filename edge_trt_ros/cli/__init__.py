"""``edge-trt``: the offline tools, one module per subcommand.

Every argparse definition of the package lives in this package; the library modules it
calls take plain arguments. Subcommand modules import their heavy dependencies (ONNX
Runtime, the quantizer, the dataset renderer) inside ``run`` so ``edge-trt --help`` stays
fast. Logging is set up once here: ``-v`` for debug detail, ``-q`` for warnings only.
"""

from __future__ import annotations

import argparse
import logging
import sys

from edge_trt_ros import __version__
from edge_trt_ros.cli import audit, benchmark, evaluate, info, inspect, power, variants
from edge_trt_ros.errors import EdgeTrtError

SUBCOMMANDS = (info, evaluate, power, variants, inspect, benchmark, audit)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-trt", description="Offline tools of edge_trt_ros: model info, accuracy, "
        "power sensors, precision variants, fusion reports, benchmarks, adaptive audit logs.")
    parser.add_argument("--version", action="version", version=f"edge-trt {__version__}")
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    loudness.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in SUBCOMMANDS:
        command.register(sub)
    return parser


def setup_logging(verbose: bool = False, quiet: bool = False) -> None:
    """The CLI's one logging set-up: the library's progress at INFO, as plain lines."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    fmt = "%(levelname)s %(name)s: %(message)s" if verbose else "%(message)s"
    logging.basicConfig(level=level, format=fmt, force=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose, args.quiet)
    try:
        return int(args.func(args) or 0)
    except (EdgeTrtError, FileNotFoundError, NotADirectoryError) as exc:
        print(f"edge-trt {args.command}: error: {exc}", file=sys.stderr)
        return 2

