"""``edge-trt info MODEL``: what a detector model is (input, output layout, classes)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("info", help="what a detector model is: input, output layout, "
                              "classes")
    p.add_argument("model", help="ONNX model file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge_trt_ros.model_info import read_model_info

    print(json.dumps(asdict(read_model_info(args.model)), indent=2))
    return 0
