"""``edge-trt variants MODEL``: write the precision variants, optionally evaluate them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

# Literal copies keep `edge-trt --help` from importing onnxruntime.quantization; a test
# checks they match calibration.CalibrationSpec / METHODS and nodes.DEFAULT_HEAD_PREFIX.
CALIB_METHODS = ("entropy", "minmax", "percentile")
DEFAULT_CALIB_COUNT = 512
DEFAULT_CALIB_METHOD = "percentile"
DEFAULT_HEAD_PREFIX = "/model/detect"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "variants",
        help="write fp16 / int8 (TensorRT Q/DQ and ONNX Runtime u8s8) variants of a model",
        description="Writes the fp32 copy, the fp16 variant and the INT8 Q/DQ variants "
        "(calibrated on the lux-stratified calib split with augmentation; cached) plus a "
        "variants.json manifest. --evaluate adds mAP@0.5 overall and per lux bin measured "
        "on this machine.",
    )
    p.add_argument("model", type=Path, help="base ONNX model (fp32)")
    p.add_argument("--out", type=Path, default=None,
                   help="output directory (default: results/variants/<model stem>)")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="calibration cache (default: <out>/cache)")
    p.add_argument("--calib-count", type=int, default=DEFAULT_CALIB_COUNT,
                   help="calibration frames from the calib split (default: %(default)s)")
    p.add_argument("--calib-method", choices=CALIB_METHODS, default=DEFAULT_CALIB_METHOD,
                   help="how ranges are derived from the activations (default: %(default)s)")
    p.add_argument("--no-augment", action="store_true",
                   help="calibrate on the rendered frames without camera augmentation")
    p.add_argument("--mixed", action="store_true",
                   help="also write int8 variants with the first conv and the head in float")
    p.add_argument("--head-prefix", default=DEFAULT_HEAD_PREFIX,
                   help="node-name prefix of the detection head (default: %(default)s)")
    p.add_argument("--keep-float", action="append", default=[], metavar="[RECIPE:]PREFIX",
                   help="keep nodes whose names start with PREFIX float in the int8 variants "
                   "(repeatable), e.g. /model/stem; ort:/model/stem or trt:/model/stem for "
                   "one recipe only")
    p.add_argument("--share-concat-ranges", action="append", default=[], metavar="RECIPE",
                   choices=("ort", "trt"),
                   help="give the tensors around each Concat one quantization range in this "
                   "recipe's int8 file (repeatable), so ONNX Runtime's QLinearConcat only "
                   "copies (variants/shared_ranges.py)")
    p.add_argument("--base-in-place", action="store_true",
                   help="record the fp32 model where it is instead of copying it into --out "
                   "(for variant sets shipped beside their model)")
    p.add_argument("--evaluate", action="store_true",
                   help="measure mAP@0.5 of every variant on the test split and record it")
    p.add_argument("--eval-count", type=int, default=None,
                   help="test frames for --evaluate (default: the whole split, 800)")
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge_trt_ros.variants.augment import AugmentSpec
    from edge_trt_ros.variants.build import build_variants
    from edge_trt_ros.variants.calibration import CalibrationSpec
    from edge_trt_ros.variants.evaluate import evaluate_variants
    from edge_trt_ros.variants.manifest import load_manifest

    out = args.out or Path("results") / "variants" / args.model.stem
    spec = CalibrationSpec(count=args.calib_count, method=args.calib_method,
                           augment=None if args.no_augment else AugmentSpec())
    path = build_variants(args.model, out, calibration=spec, mixed=args.mixed,
                          head_prefix=args.head_prefix, cache_dir=args.cache_dir,
                          float_prefixes=tuple(args.keep_float),
                          share_concat_ranges=tuple(args.share_concat_ranges),
                          copy_base=not args.base_in_place)
    manifest = load_manifest(path)
    if args.evaluate:
        manifest = evaluate_variants(path, count=args.eval_count, threads=args.threads)
    print(format_manifest(manifest))
    print(f"wrote {path}")
    return 0


def format_manifest(manifest: dict[str, Any]) -> str:
    """Markdown table of a manifest's variants (with accuracy once evaluated)."""
    rows = ["| variant | precision | recipe | MB | mAP@0.5 | worst drop vs fp32 | guard |",
            "|---|---|---|---|---|---|---|"]
    for name, v in manifest["variants"].items():
        ev = v.get("evaluation") or {}
        m = ev.get("map50")
        drop = ev.get("worst_drop")
        ok = ev.get("within_guard")
        guard = "" if ok is None else ("pass" if ok else "FAIL")
        rows.append(f"| {name} | {v['precision']} | {v['recipe']} | {v['bytes'] / 1e6:.1f} | "
                    f"{'' if m is None else f'{m:.4f}'} | "
                    f"{'' if drop is None else f'{drop:+.4f}'} | {guard} |")
    return "\n".join(rows)
