"""``edge-trt inspect MODEL``: the fusion report of each fusion profile."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import Any

from edge_trt_ros.choices import FUSION_PROFILES, PRECISIONS


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "inspect",
        help="fusion report: what each fusion profile fused, activation bytes, per-layer time",
        description="Runs the model under each fusion profile and reports what was fused, the "
        "activation bytes moved per inference and per-node/layer time. ONNX Runtime (CPU): "
        "the graph it runs against the original, profiled. TensorRT (GPU): the engine "
        "inspector's layers with their ONNX nodes, timed with an IProfiler. Writes JSON and "
        "Markdown.",
    )
    p.add_argument("model", type=Path, help="ONNX model or variant file")
    p.add_argument("--backend", choices=("onnxruntime", "tensorrt"), default="onnxruntime")
    p.add_argument("--profile", action="append", choices=FUSION_PROFILES, default=None,
                   help="fusion profile (repeatable; default: all)")
    p.add_argument("--runs", type=int, default=20, help="profiled runs per profile")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads")
    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="TensorRT: what the file holds (default: from its metadata, else fp32)")
    p.add_argument("--cache-dir", type=Path, default=Path("results") / "engines",
                   help="TensorRT engine cache (default: %(default)s)")
    p.add_argument("--out", type=Path, default=None,
                   help="JSON path (default: results/inspect/<model stem>.<backend>.json; "
                   ".md beside it)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge_trt_ros.engines.fusion_report import (
        markdown,
        onnxruntime_report,
        sample_input,
        tensorrt_markdown,
        tensorrt_report,
    )
    from edge_trt_ros.files import write_atomic, write_json_atomic
    from edge_trt_ros.model_info import read_model_info

    profiles = args.profile or list(FUSION_PROFILES)
    tensor = sample_input(args.model)
    out = args.out or Path("results") / "inspect" / f"{args.model.stem}.{args.backend}.json"
    doc: dict[str, Any] = {"model": str(args.model), "backend": args.backend,
                           "runs": args.runs}
    if args.backend == "tensorrt":
        precision = args.precision or read_model_info(args.model).precision
        trt_reports = tensorrt_report(args.model, tensor, profiles, precision=precision,
                                      cache_dir=args.cache_dir, runs=args.runs)
        doc |= {"precision": precision, "profiles": [asdict(r) for r in trt_reports]}
        text = tensorrt_markdown(args.model.name, trt_reports)
    else:
        reports = onnxruntime_report(args.model, tensor, profiles, runs=args.runs,
                                     threads=args.threads)
        doc |= {"threads": args.threads,
                "profiles": [r.summary() | {"nodes": [asdict(n) for n in r.nodes]}
                             for r in reports]}
        text = markdown(args.model.name, reports)
    write_json_atomic(out, doc)
    write_atomic(out.with_suffix(".md"), lambda p: p.write_text(text))
    print(text)
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0
