"""`edge-trt`: the offline tools (model info, evaluation, power check, ...)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from edge_trt_ros import __version__


def _info(args: argparse.Namespace) -> int:
    from edge_trt_ros.model_info import read_model_info

    info = read_model_info(args.model)
    print(json.dumps(asdict(info), indent=2))
    return 0


def _register_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="what a detector model is: input, output layout, classes")
    p.add_argument("model", help="ONNX model file")
    p.set_defaults(func=_info)


def build_parser() -> argparse.ArgumentParser:
    from edge_trt_ros.engines.fusion_report import register_cli as register_inspect
    from edge_trt_ros.evaluation import register_cli as register_evaluate
    from edge_trt_ros.power.cli import register_cli as register_power
    from edge_trt_ros.variants.cli import register_cli as register_variants

    parser = argparse.ArgumentParser(prog="edge-trt", description=__doc__)
    parser.add_argument("--version", action="version", version=f"edge-trt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for register in (_register_info, register_evaluate, register_power, register_variants,
                     register_inspect):
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
