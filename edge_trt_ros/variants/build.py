"""Make every variant of a base model and the manifest that lists them.

``build_variants`` writes, into one directory: the fp32 base (copied, so the set is
self-contained), the fp16 file, the two int8 recipes (TensorRT s8s8 and ONNX Runtime u8s8)
and, with ``mixed``, the same two with the first convolution and the detection head kept
float; plus ``variants.json``. Calibration runs once per (model, calibration set) and is
cached; every file is written atomically.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import onnx

from edge_trt_ros.files import copy_atomic, save_model_atomic, sha256_file
from edge_trt_ros.model_info import PRECISION_KEY, read_model_info
from edge_trt_ros.variants import fp16, headroom, int8, nodes, shared_ranges
from edge_trt_ros.variants.calibration import CalibrationResult, CalibrationSpec, calibrate
from edge_trt_ros.variants.manifest import (
    MANIFEST_NAME,
    SCHEMA,
    machine,
    now_iso,
    tool_versions,
    variant_entry,
    write_manifest,
)

log = logging.getLogger(__name__)



def recipe_prefixes(float_prefixes: tuple[str, ...], recipe: str) -> tuple[str, ...]:
    """The prefixes that apply to ``recipe``: plain ones, and ``recipe:``-qualified ones."""
    out = []
    for p in float_prefixes:
        head, sep, tail = p.partition(":")
        if sep and head in int8.RECIPES:
            if head == recipe:
                out.append(tail)
        else:
            out.append(p)
    return tuple(out)


def build_variants(
    model_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    calibration: CalibrationSpec | None = None,
    mixed: bool = False,
    head_prefix: str = nodes.DEFAULT_HEAD_PREFIX,
    cache_dir: str | os.PathLike[str] | None = None,
    include: tuple[str, ...] = ("fp32", "fp16", "int8"),
    float_prefixes: tuple[str, ...] = (),
    copy_base: bool = True,
    fp16_headroom: headroom.HeadroomSpec | None = None,
    share_concat_ranges: tuple[str, ...] = (),
) -> Path:
    """Write the variants of ``model_path`` into ``out_dir``; returns the manifest path.

    ``fp16_headroom``: the frames and margin the fp16 build measures ranges on (default
    :class:`~edge_trt_ros.variants.headroom.HeadroomSpec`); the ops it keeps fp32 are
    recorded in the fp16 entry's ``fp16_headroom``.

    ``copy_base`` False records the fp32 base in place (a path relative to the manifest)
    instead of copying it, for variant sets shipped beside their model.

    ``float_prefixes``: node-name prefixes kept float in the int8 variants, on top of the
    decode tail (and of the first conv and head when mixed), e.g. ``("/model/stem",)``
    for a model whose first block is the one that fails the accuracy guard in int8; a
    ``RECIPE:`` in front (``ort:/model/stem``) limits a prefix to that recipe.

    ``share_concat_ranges``: recipe keys (``("ort",)``) whose int8 files are quantized with
    one range per group of tensors around each Concat
    (:mod:`~edge_trt_ros.variants.shared_ranges`), so ONNX Runtime's ``QLinearConcat``
    copies instead of requantizing. The default (none) leaves every recipe as before.
    """
    src = Path(model_path)
    if not src.is_file():
        raise FileNotFoundError(f"model {src} not found")
    unknown = set(include) - {"fp32", "fp16", "int8"}
    if unknown:
        raise ValueError(f"unknown precision(s) {sorted(unknown)}; use fp32, fp16, int8")
    unknown = set(share_concat_ranges) - set(int8.RECIPES)
    if unknown:
        raise ValueError(f"unknown int8 recipe(s) {sorted(unknown)} for shared Concat ranges; "
                         f"use {', '.join(int8.RECIPES)}")
    spec = calibration or CalibrationSpec()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(cache_dir) if cache_dir is not None else out / "cache"
    info = read_model_info(src)
    base = onnx.load(str(src))
    base_sha = sha256_file(src)
    stem = src.stem
    meta = {p.key: p.value for p in base.metadata_props}
    t_start = time.perf_counter()
    variants: dict[str, dict[str, Any]] = {}
    calib_info: dict[str, Any] | None = None

    def entry(name: str, file: Path, precision: str, recipe: str, key: str | None,
              backends: list[str], **details: Any) -> None:
        variants[name] = variant_entry(out, name, file, precision=precision, recipe=recipe,
                                       base_sha256=base_sha, calibration_key=key,
                                       backends=backends, details=details)

    if "fp32" in include:
        dst = out / f"{stem}.fp32.onnx"
        if copy_base:
            copy_atomic(src, dst)
        entry("fp32", dst if copy_base else src, "fp32",
              "base model (unchanged copy)" if copy_base else "base model (in place)", None,
              ["onnxruntime", "tensorrt"])

    if "fp16" in include:
        dst = out / f"{stem}.fp16.onnx"
        room = headroom.measure_headroom(src, input_name=info.input_name,
                                         input_hw=info.input_hw, layout=info.input_layout,
                                         spec=fp16_headroom, calibration=spec)
        model16 = fp16.convert_fp16(base, room.blocked)
        recipe16 = fp16.recipe(len(room.blocked))
        int8.set_metadata(model16, {**meta, PRECISION_KEY: "fp16",
                                    "edge_trt_ros.recipe": recipe16})
        save_model_atomic(model16, dst)
        entry("fp16", dst, "fp16", recipe16, None, ["tensorrt", "onnxruntime"],
              fp16_headroom=room.to_dict())

    if "int8" in include:
        with tempfile.TemporaryDirectory(prefix="edge_trt_variants.") as tmp:
            prepared = int8.prepare_for_quantization(src, Path(tmp) / "prepared.onnx")
            prepared_model = onnx.load(str(prepared))
            result = calibrate(prepared, base_sha, spec, cache, input_name=info.input_name,
                               input_hw=info.input_hw, layout=info.input_layout)
            calib_info = {**result.to_dict(), "spec": spec.to_dict(),
                          "ranges_file": os.path.relpath(result.ranges_path, out)}
            shared: CalibrationResult | None = None
            shared_count = 0
            if share_concat_ranges:
                path, shared_count = shared_ranges.write_shared_ranges(
                    prepared, result.ranges_path, Path(tmp) / "shared-ranges.json")
                shared = dataclasses.replace(result, ranges_path=path)
            plans = [(False, "")] + ([(True, "-mixed")] if mixed else [])
            for is_mixed, suffix in plans:
                for recipe in int8.RECIPES.values():
                    prefixes = recipe_prefixes(float_prefixes, recipe.key)
                    keep = nodes.float_nodes(prepared_model, mixed=is_mixed,
                                             head_prefix=head_prefix, prefixes=prefixes)
                    name = f"int8-{recipe.key}{suffix}"
                    dst = out / f"{stem}.{name}.onnx"
                    share = shared is not None and recipe.key in share_concat_ranges
                    ranges = shared if share and shared is not None else result
                    _, rewrites = int8.quantize_int8(prepared, dst, recipe, ranges, keep,
                                                     metadata=meta)
                    backends = (["tensorrt", "onnxruntime"] if recipe.key == "trt"
                                else ["onnxruntime"])
                    recipe_name = recipe.name + suffix + "".join(
                        f"+float:{p}" for p in prefixes) + (
                        "+shared-concat-ranges" if share else "") + (
                        "+nhwc-layout" if rewrites else "")
                    entry(name, dst, "int8", recipe_name, result.key, backends,
                          int8_recipe=recipe.to_dict(), mixed=is_mixed,
                          float_nodes=len(keep), float_prefixes=list(prefixes),
                          **({"shared_concat_ranges": shared_count} if share else {}),
                          **({"nhwc_layout_rewrites": rewrites} if rewrites else {}),
                          preprocess="quant_pre_process: onnx shape inference + ORT basic "
                                     "optimisation (BatchNorm folded into Conv)")

    manifest = {
        "schema": SCHEMA,
        "created": now_iso(),
        "base_model": {"path": os.path.relpath(src, out), "sha256": base_sha,
                       "input": info.input_name, "input_hw": list(info.input_hw),
                       "layout": info.input_layout, "output_layout": info.output_layout,
                       "class_names": list(info.class_names)},
        "calibration": calib_info,
        "tools": tool_versions(),
        "machine": machine(),
        "build_seconds": round(time.perf_counter() - t_start, 1),
        "variants": variants,
        "evaluation": None,
    }
    path = write_manifest(out / MANIFEST_NAME, manifest)
    log.info("wrote %d variants and %s", len(variants), path)
    return path
