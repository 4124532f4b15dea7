#!/usr/bin/env python3
"""Check that the variant ONNX files build under a TensorRT-family builder; write JSON.

Runs the TensorRT backend's build path exactly as the node does (parse the variant file,
strongly typed network, the fusion profile's optimisation level and marked BatchNorm /
activation outputs, ``build_serialized_network``) for every variant x fusion profile, and
records for each: built or refused, with TensorRT's parser and builder messages, and the
built engine's layers by type as the builder lists them in its detailed verbose log (the
count that shows fusion: fewer layers and reformats = more fused). It never
deserializes or runs a plan, so it works where only the builder works: TensorRT-RTX
(``--module tensorrt_rtx_bindings``) builds on machines whose GPU it cannot run (an H100 is
sm_90) and even without a GPU.

    python tools/check_trt_build.py results/variants_cpu --module tensorrt_rtx_bindings \\
        --profiles max,conservative --out results/bench/trt_build_check.json

SOURCE: a variant manifest (variants.json), a directory holding one, a directory of *.onnx
files, or one .onnx file. From a manifest, only variants listed for the tensorrt backend are
built unless --all-variants. Exit status: 0 all built, 1 some refused, 2 module unusable.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from edge_trt_ros.choices import FUSION_PROFILES  # noqa: E402
from edge_trt_ros.engines.tensorrt_build import (  # noqa: E402
    TrtBuildConfig,
    build_serialized,
    detect_features,
    load_tensorrt,
)
from edge_trt_ros.errors import EngineError, TrtBuildError  # noqa: E402
from edge_trt_ros.files import sha256_file, write_json_atomic  # noqa: E402
from edge_trt_ros.variants.manifest import MANIFEST_NAME, load_manifest, variant_path  # noqa: E402

log = logging.getLogger("check_trt_build")

RTX_NOTE = ("TensorRT-RTX quantizes INT8 weights only: a refusal of Q/DQ activations there is "
            "not evidence about TensorRT; and its plans run only on sm_80/86/89/12x GPUs")


def _precision_of(path: Path) -> str:
    for precision in ("fp16", "int8"):
        if f".{precision}" in path.name or f"{precision}-" in path.name:
            return precision
    return "fp32"


def variant_files(source: Path, names: list[str] | None,
                  all_variants: bool) -> list[dict[str, Any]]:
    """(name, file, precision, recipe) of each variant to build."""
    manifest_path = source / MANIFEST_NAME if source.is_dir() else source
    if manifest_path.suffix == ".json" and manifest_path.is_file():
        manifest = load_manifest(manifest_path)
        rows = []
        for name, entry in manifest["variants"].items():
            if names and name not in names:
                continue
            if not names and not all_variants and "tensorrt" not in entry.get("backends", []):
                continue
            rows.append({"variant": name, "file": variant_path(manifest, name),
                         "precision": entry["precision"], "recipe": entry.get("recipe", ""),
                         "calibration": entry.get("calibration_key") or ""})
        return rows
    files = sorted(source.glob("*.onnx")) if source.is_dir() else [source]
    return [{"variant": f.stem, "file": f, "precision": _precision_of(f), "recipe": "",
             "calibration": ""} for f in files if not names or f.stem in names]


def check_one(trt_module: Any, row: dict[str, Any], profile: str,
              args: argparse.Namespace) -> dict[str, Any]:
    config = TrtBuildConfig.for_variant(
        row["precision"], profile, workspace_bytes=args.workspace_mib << 20,
        timing_cache_path=args.timing_cache, calibration_sha256=row["calibration"])
    result: dict[str, Any] = {
        "variant": row["variant"], "file": str(row["file"]), "recipe": row["recipe"],
        "sha256": sha256_file(row["file"]), "precision": row["precision"], "profile": profile,
        "settings": config.cache_settings()}
    started = time.monotonic()
    try:
        outcome = build_serialized(trt_module, row["file"], config)
    except TrtBuildError as exc:
        result.update(status="refused", stage=exc.stage, error=str(exc),
                      parser_errors=exc.parser_errors, builder_errors=exc.builder_errors)
    except EngineError as exc:
        result.update(status="refused", stage="setup", error=str(exc))
    except Exception as exc:  # keep checking the other files; the JSON says what broke
        result.update(status="error", stage="unexpected", error=f"{type(exc).__name__}: {exc}")
    else:
        report = outcome.report
        result.update(
            status="built", plan_bytes=report.plan_bytes, strongly_typed=report.strongly_typed,
            marked_batchnorm=sum(m.kind == "batchnorm" for m in report.marked),
            marked_activation=sum(m.kind == "activation" for m in report.marked),
            boundaries_missing=report.boundaries_missing, timing_cache=report.timing_cache,
            engine_layers=report.engine_layers, warnings=report.warnings[:20])
    result["seconds"] = round(time.monotonic() - started, 2)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="variants.json, its directory, or ONNX files")
    parser.add_argument("--module", default="tensorrt",
                        help="TensorRT-family Python module (tensorrt, tensorrt_rtx_bindings)")
    parser.add_argument("--profiles", default="max,conservative",
                        help=f"comma-separated fusion profiles ({', '.join(FUSION_PROFILES)})")
    parser.add_argument("--variants", default="", help="comma-separated variant names")
    parser.add_argument("--all-variants", action="store_true",
                        help="also build variants the manifest lists for onnxruntime only")
    parser.add_argument("--workspace-mib", type=int, default=0,
                        help="builder workspace limit in MiB (0: TensorRT's default)")
    parser.add_argument("--timing-cache", default=None, help="timing cache file to reuse")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON report (default: trt_build_check.<module>.json next to SOURCE)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log TensorRT messages")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    if not args.verbose:
        logging.getLogger("edge_trt_ros.engines.tensorrt.library").setLevel(logging.ERROR)
    profiles = [p for p in args.profiles.split(",") if p]
    unknown = set(profiles) - set(FUSION_PROFILES)
    if unknown:
        parser.error(f"unknown fusion profile(s) {sorted(unknown)}; "
                     f"use {', '.join(FUSION_PROFILES)}")
    out = args.out or (args.source if args.source.is_dir() else args.source.parent) / (
        f"trt_build_check.{args.module}.json")

    report: dict[str, Any] = {
        "tool": "tools/check_trt_build.py", "module": args.module, "source": str(args.source),
        "host": {"python": platform.python_version(), "machine": platform.machine(),
                 "system": platform.platform()},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "builds": []}
    try:
        trt_module = load_tensorrt(args.module)
        features = detect_features(trt_module)
    except EngineError as exc:
        report["error"] = str(exc)
        write_json_atomic(out, report)
        log.error("%s (report: %s)", exc, out)
        return 2
    report.update(version=features.version, module_file=str(getattr(trt_module, "__file__", "")),
                  features=dataclasses.asdict(features),
                  notes=[RTX_NOTE] if "rtx" in args.module else [])
    rows = variant_files(args.source, [v for v in args.variants.split(",") if v] or None,
                         args.all_variants)
    if not rows:
        log.error("no variant files found in %s", args.source)
        return 2
    for row in rows:
        for profile in profiles:
            log.info("building %s (%s) with fusion profile %s", row["variant"], row["file"],
                     profile)
            result = check_one(trt_module, row, profile, args)
            report["builds"].append(result)
            write_json_atomic(out, report)  # partial results survive a killed run
            log.info("%s / %s: %s in %.1f s%s", row["variant"], profile, result["status"],
                     result["seconds"], f" - {result['error']}" if "error" in result else "")
    statuses = [b["status"] for b in report["builds"]]
    report["summary"] = {s: statuses.count(s) for s in sorted(set(statuses))}
    write_json_atomic(out, report)
    print(f"{args.module} {features.version}: {report['summary']} -> {out}")
    for b in report["builds"]:
        layers = b.get("engine_layers")
        detail = (f"plan {b['plan_bytes'] / 1e6:.1f} MB, marked {b['marked_batchnorm']} BN + "
                  f"{b['marked_activation']} act, engine layers "
                  + (f"{sum(layers.values())} {layers}" if layers else "not listed")
                  if b["status"] == "built" else b.get("error", "")[:160])
        print(f"  {b['variant']:<16} {b['profile']:<13} {b['status']:<8} {detail}")
    return 0 if set(statuses) == {"built"} else 1


if __name__ == "__main__":
    sys.exit(main())
