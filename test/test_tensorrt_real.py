"""The TensorRT backend for real: runs where the library (and for engines, a CUDA GPU) is
present, and is reported as skipped, with the reason, everywhere else.

- ``tensorrt`` + CUDA: builds the shipped model (and the variants of a manifest, when one
  exists: $EDGE_TRT_VARIANTS or results/*/variants.json) and compares the engine's outputs
  with ONNX Runtime running the same file; checks fusion profiles, the cache, the fusion
  report and per-layer timing.
- ``tensorrt_rtx_bindings`` (TensorRT-RTX): build path only. It builds strongly typed
  networks from the same files but runs plans only on some GPUs, so nothing is run.

Installing ``tensorrt-stubs`` makes ``import tensorrt`` succeed with an empty namespace
package; the fixtures check for the real library, not just the name.
"""

from __future__ import annotations

import importlib
import os
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import onnx
import pytest

from edge_trt_ros.engines.tensorrt_backend import TensorRTEngine, load_engine
from edge_trt_ros.engines.tensorrt_build import (
    TrtBuildConfig,
    boundary_tensors,
    build_serialized,
)

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "defect_yolo.onnx"
# Output agreement with ONNX Runtime on the same file: class scores (absolute) everywhere,
# box coordinates (pixels) where some class scores above 0.25. fp32 allows TF32 convolutions.
TOLERANCE = {"fp32": (0.01, 0.5), "fp16": (0.03, 2.0), "int8": (0.08, 4.0)}


def _boundaries() -> Counter[str]:
    """How many BatchNorm / activation outputs the profile rule selects in the shipped model."""
    model = onnx.load(str(MODEL), load_external_data=False)
    return Counter(boundary_tensors(model, batchnorm=True, activation=True).values())


def _library(name: str) -> ModuleType:
    module = pytest.importorskip(name, reason=f"{name} is not installed")
    if not hasattr(module, "Builder"):
        pytest.skip(f"'{name}' imports but is not the library (type stubs only, e.g. "
                    "tensorrt-stubs)")
    return module


@pytest.fixture(scope="module")
def trt() -> tuple[ModuleType, ModuleType]:
    """(tensorrt, CUDA helpers), or skip saying which is missing."""
    tensorrt = _library("tensorrt")
    try:
        cuda = importlib.import_module("edge_trt_ros.gpu.runtime")
    except ImportError as exc:
        pytest.skip(f"CUDA helpers unavailable ({exc})")
    if not cuda.cuda_available():
        pytest.skip("no CUDA device visible")
    return tensorrt, cuda


def _variants() -> list[tuple[str, Path, str]]:
    """(name, file, precision): the shipped fp32 model plus manifest variants for TensorRT."""
    from edge_trt_ros.errors import ManifestError
    from edge_trt_ros.variants.manifest import load_manifest, variant_path

    rows = [("shipped-fp32", MODEL, "fp32")]
    env = os.environ.get("EDGE_TRT_VARIANTS")
    manifests = [Path(env)] if env else sorted(ROOT.glob("results/*/variants.json"))
    for manifest_path in manifests[:1]:
        try:
            manifest = load_manifest(manifest_path)
        except ManifestError:
            continue  # a broken manifest is test_variants' business; the shipped model runs
        rows += [(name, variant_path(manifest, name), entry["precision"])
                 for name, entry in manifest["variants"].items()
                 if "tensorrt" in entry.get("backends", []) and name != "fp32"]
    return rows


def _frames(count: int = 3) -> list[np.ndarray]:
    from edge_trt_ros.dataset.splits import iter_split
    from edge_trt_ros.model_info import read_model_info
    from edge_trt_ros.vision.image import rgb_view
    from edge_trt_ros.vision.letterbox import Letterbox

    info = read_model_info(MODEL)
    letterbox = Letterbox(info.input_hw, info.input_layout)
    return [letterbox(rgb_view(s.image))[0] for s in iter_split("test", count)]


def _engine(trt: tuple[ModuleType, ModuleType], model: Path, cache: Path, precision: str,
            profile: str = "max") -> TensorRTEngine:
    tensorrt, cuda = trt
    return load_engine(model, TrtBuildConfig.for_variant(precision, profile), cache,
                       trt_module=tensorrt, cuda=cuda)


def _assert_close(got: np.ndarray, want: np.ndarray, precision: str, what: str) -> None:
    score_tol, box_tol = TOLERANCE[precision]
    scores_got, scores_want = got[:, 4:, :], want[:, 4:, :]
    score_err = float(np.abs(scores_got - scores_want).max())
    confident = scores_want.max(axis=1) > 0.25
    box_err = float(np.abs(got[:, :4, :] - want[:, :4, :]).max(axis=1)[confident].max(
        initial=0.0))
    assert score_err <= score_tol and box_err <= box_tol, (
        f"{what}: max score error {score_err:.4f} (allowed {score_tol}), max box error "
        f"{box_err:.2f} px (allowed {box_tol})")


@pytest.mark.parametrize(("name", "model", "precision"), _variants(),
                         ids=[v[0] for v in _variants()])
def test_engine_matches_onnxruntime(trt: tuple[ModuleType, ModuleType], tmp_path: Path,
                                    name: str, model: Path, precision: str) -> None:
    from edge_trt_ros.engines.onnxruntime_backend import OnnxRuntimeEngine

    engine = _engine(trt, model, tmp_path, precision)
    reference = OnnxRuntimeEngine(model, precision=precision)
    try:
        for frame in _frames():
            (got,) = engine.infer(frame)
            (want,) = reference.infer(frame)
            assert got.shape == want.shape and got.dtype == np.float32
            _assert_close(got, want, precision, f"{name} vs ONNX Runtime")
    finally:
        engine.release()
        reference.release()


def test_fusion_profiles_agree_and_materialise_boundaries(
        trt: tuple[ModuleType, ModuleType], tmp_path: Path) -> None:
    frame = _frames(1)[0]
    fused = _engine(trt, MODEL, tmp_path, "fp32", "max")
    unfused = _engine(trt, MODEL, tmp_path, "fp32", "none")
    try:
        _assert_close(unfused.infer(frame)[0], fused.infer(frame)[0].copy(), "fp32",
                      "profile none vs max")
        io = [e._engine.num_io_tensors for e in (fused, unfused)]  # type: ignore[union-attr]
        assert io == [2, 2 + sum(_boundaries().values())]
        fused_layers, unfused_layers = fused.layers(), unfused.layers()
        assert any(layer["fused"] for layer in fused_layers)
        assert len(unfused_layers) > len(fused_layers)
        assert any(n.startswith("/model") for layer in fused_layers
                   for n in layer["onnx_nodes"])
    finally:
        fused.release()
        unfused.release()


def test_second_load_comes_from_the_cache(trt: tuple[ModuleType, ModuleType],
                                          tmp_path: Path) -> None:
    first = _engine(trt, MODEL, tmp_path, "fp32")
    first.release()
    second = _engine(trt, MODEL, tmp_path, "fp32")
    try:
        assert (first.info.settings["cache"], second.info.settings["cache"]) == ("built", "hit")
        assert (tmp_path / "tensorrt.timing.cache").stat().st_size > 0
        times = second.layer_times_ms(_frames(1)[0], runs=3)
        assert times and all(v >= 0 for v in times.values())
    finally:
        second.release()


@pytest.mark.parametrize("module_name", ["tensorrt", "tensorrt_rtx_bindings"])
def test_build_path_under_a_tensorrt_family_builder(module_name: str) -> None:
    """Parse + strongly typed build of the shipped model; no GPU run needed."""
    module = _library(module_name)
    results: dict[str, Any] = {}
    for profile in ("max", "conservative"):
        outcome = build_serialized(module, MODEL, TrtBuildConfig.for_variant("fp32", profile))
        results[profile] = outcome.report
        assert outcome.plan and outcome.report.boundaries_missing == []
    assert results["max"].marked == []
    marked = Counter(m.kind for m in results["conservative"].marked)
    assert marked == _boundaries() and marked["batchnorm"] > 0 and marked["activation"] > 0
