"""Precision variants: fp16 / int8 files, calibration cache, manifest, fusion profiles.

Most tests run on a small generated detector (two Conv+BN+SiLU blocks, a head under
``/model/detect``, a YOLOv8-layout decode tail) at 64x96 input, calibrated on a handful of
frames, so the file runs in seconds. One test quantizes the shipped model and checks its
mAP on a small test subset.

Stated tolerances (outputs of the generated model: 4 box values in pixels 0..96 and
4 class scores 0..1; compared against fp32 at fusion profile ``max`` on a letterboxed
calibration frame):
* fp32 under any fusion profile: 1e-4 abs (float re-association only);
* fp16: scores 2e-3 abs, boxes 0.2 px;
* int8 (either recipe, any profile): scores 0.03 abs, boxes 2 px (2% of the input width),
  and int8 scores correlate with fp32 at r >= 0.99 (the scores' spread is ~0.08, so the
  absolute bound alone would not prove much).
Measured when written: fp16 3e-4 / 0.05 px; int8 <= 0.009 / 1.1 px, r >= 0.9996.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper
from onnx_models import TINY_INPUT_HW as INPUT_HW

from edge_trt_ros.choices import FUSION_PROFILES
from edge_trt_ros.cli import main as cli_main
from edge_trt_ros.dataset import LUX_BINS, render_sample, split_lux, split_seeds
from edge_trt_ros.engines.fusion import SETTINGS, fusion_settings, markdown_table
from edge_trt_ros.engines.onnxruntime_backend import GRAPH_OPTIMIZATION, OnnxRuntimeEngine
from edge_trt_ros.files import sha256_file
from edge_trt_ros.model_info import read_model_info
from edge_trt_ros.variants import calibration as calib_mod
from edge_trt_ros.variants import nodes
from edge_trt_ros.variants.augment import AugmentSpec, augment
from edge_trt_ros.variants.build import build_variants
from edge_trt_ros.variants.calibration import (
    CalibrationFrames,
    CalibrationSpec,
    calibrate,
    calibration_key,
    calibration_runs,
)
from edge_trt_ros.variants.fp16 import convert_fp16
from edge_trt_ros.variants.int8 import prepare_for_quantization
from edge_trt_ros.variants.manifest import load_manifest, variant_path, verify
from edge_trt_ros.vision.image import rgb_view
from edge_trt_ros.vision.letterbox import Letterbox

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "defect_yolo.onnx"
FP32_ATOL = 1e-4
FP16_SCORE_ATOL, FP16_BOX_ATOL = 2e-3, 0.2
INT8_SCORE_ATOL, INT8_BOX_ATOL, INT8_MIN_CORR = 0.03, 2.0, 0.99

CALIB = CalibrationSpec(count=8, augment=AugmentSpec(seed=1))


@pytest.fixture(scope="module")
def built(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """All variants of the tiny model (mixed included); calibration cached in the out dir."""
    out = tmp_path_factory.mktemp("variants")
    runs = calibration_runs()
    path = build_variants(tiny, out, calibration=CALIB, mixed=True)
    assert calibration_runs() == runs + 1
    return load_manifest(path)


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    """A letterboxed calibration-split frame: exactly what the runtime feeds the engine."""
    seed = split_seeds("calib", 1)[0]
    sample = render_sample(seed, 640, 480, lux=split_lux("calib", seed))
    tensor, _ = Letterbox(INPUT_HW)(rgb_view(sample.image))
    return tensor.copy()


def _run(path: Path | str, x: np.ndarray, profile: str = "max") -> np.ndarray:
    engine = OnnxRuntimeEngine(path, fusion_profile=profile, intra_op_threads=1)
    try:
        return np.asarray(engine.infer(x)[0])
    finally:
        engine.release()


def _initializers(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    return {i.name: i for i in model.graph.initializer}


# --- fusion table ---------------------------------------------------------------------

def test_fusion_table_maps_every_profile_to_both_backends() -> None:
    assert FUSION_PROFILES == ("max", "balanced", "conservative", "none")
    levels = {p: fusion_settings(p).ort_graph_optimization for p in FUSION_PROFILES}
    assert levels == {"max": "all", "balanced": "extended", "conservative": "basic",
                      "none": "none"}
    assert set(levels.values()) <= set(GRAPH_OPTIMIZATION)
    assert [SETTINGS[p].trt_builder_optimization_level for p in FUSION_PROFILES] == [5, 3, 1, 0]
    assert [SETTINGS[p].materialises_boundaries for p in FUSION_PROFILES] == [
        False, False, True, True]
    assert "| conservative | ORT_ENABLE_BASIC | 1 | BatchNorm + activation |" in markdown_table()
    with pytest.raises(ValueError, match="resolved per device"):
        fusion_settings("auto")
    with pytest.raises(ValueError, match="use one of"):
        fusion_settings("fastest")


# --- augmentation and calibration frames ----------------------------------------------

def test_augment_is_deterministic_and_changes_frames() -> None:
    image = render_sample(split_seeds("calib", 1)[0]).image
    spec = AugmentSpec(seed=3, p_original=0.0, p_each=1.0)
    a, b = augment(image, 11, spec), augment(image, 11, spec)
    assert np.array_equal(a, b) and a.dtype == np.uint8 and a.shape == image.shape
    assert not np.array_equal(a, image)
    assert not np.array_equal(a, augment(image, 12, spec))
    assert augment(image, 11, AugmentSpec(p_original=1.0)) is image
    with pytest.raises(ValueError, match="gamma_range"):
        AugmentSpec(gamma_range=(1.2, 0.9))


def test_calibration_frames_are_lux_stratified_runtime_tensors() -> None:
    spec = CalibrationSpec(count=8, augment=None)
    reader = CalibrationFrames(spec, "images", INPUT_HW)
    tensors = []
    while (feed := reader.get_next()) is not None:
        tensors.append(feed["images"])
    assert len(tensors) == 8 == reader.served
    assert reader.lux_bins == {name: 2 for _, _, name in LUX_BINS}
    # Without augmentation, a calibration tensor is bit-identical to the runtime letterbox.
    seed = split_seeds("calib", 1)[0]
    sample = render_sample(seed, 640, 480, lux=split_lux("calib", seed))
    expected, _ = Letterbox(INPUT_HW)(rgb_view(sample.image))
    assert tensors[0].shape == (1, 3, *INPUT_HW) and tensors[0].dtype == np.float32
    assert np.array_equal(tensors[0], expected)
    assert not np.shares_memory(tensors[0], tensors[1])


def test_calibration_key_tracks_model_and_every_parameter() -> None:
    key = calibration_key("a" * 64, CALIB, INPUT_HW, "nchw")
    assert key == calibration_key("a" * 64, CalibrationSpec(count=8, augment=AugmentSpec(seed=1)),
                                  INPUT_HW, "nchw")
    changed = [
        calibration_key("b" * 64, CALIB, INPUT_HW, "nchw"),
        calibration_key("a" * 64, CalibrationSpec(count=9, augment=AugmentSpec(seed=1)),
                        INPUT_HW, "nchw"),
        calibration_key("a" * 64, CalibrationSpec(count=8, method="entropy",
                                                  augment=AugmentSpec(seed=1)), INPUT_HW, "nchw"),
        calibration_key("a" * 64, CalibrationSpec(count=8, augment=AugmentSpec(seed=2)),
                        INPUT_HW, "nchw"),
        calibration_key("a" * 64, CalibrationSpec(count=8, augment=None), INPUT_HW, "nchw"),
        calibration_key("a" * 64, CALIB, (64, 64), "nchw"),
    ]
    assert len({key, *changed}) == len(changed) + 1


def test_calibration_cache_hit_skips_calibration(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prepared = prepare_for_quantization(tiny, tmp_path / "prepared.onnx")
    kwargs = {"input_name": "images", "input_hw": INPUT_HW}
    first = calibrate(prepared, sha256_file(tiny), CALIB, tmp_path / "cache", **kwargs)
    assert not first.cached and first.frames == 8 and first.ranges_path.is_file()
    runs = calibration_runs()

    def no_frames(*args: object, **kw: object) -> None:
        raise AssertionError("a cache hit must not read calibration frames")

    monkeypatch.setattr(calib_mod, "CalibrationFrames", no_frames)
    second = calibrate(prepared, sha256_file(tiny), CALIB, tmp_path / "cache", **kwargs)
    assert second.cached and second.key == first.key and second.ranges_path == first.ranges_path
    assert calibration_runs() == runs
    assert second.frames == 8 and second.lux_bins == first.lux_bins
    # A corrupt cache file is a miss (recalibrated), never a crash.
    monkeypatch.undo()
    first.ranges_path.write_text("{truncated")
    third = calibrate(prepared, sha256_file(tiny), CALIB, tmp_path / "cache", **kwargs)
    assert not third.cached and calibration_runs() == runs + 1


def test_rebuild_reuses_the_calibration(built: dict, tiny: Path) -> None:
    out = Path(built["_path"]).parent
    runs = calibration_runs()
    manifest = load_manifest(build_variants(tiny, out, calibration=CALIB, mixed=True))
    assert calibration_runs() == runs
    assert manifest["calibration"]["cached"] is True
    assert manifest["calibration"]["key"] == built["calibration"]["key"]


# --- the variant files ----------------------------------------------------------------

def test_manifest_lists_every_file_with_its_hash(built: dict, tiny: Path) -> None:
    assert set(built["variants"]) == {"fp32", "fp16", "int8-trt", "int8-ort",
                                      "int8-trt-mixed", "int8-ort-mixed"}
    base = sha256_file(tiny)
    assert built["base_model"]["sha256"] == base
    for name, entry in built["variants"].items():
        path = variant_path(built, name)
        assert entry["sha256"] == sha256_file(path), name
        assert entry["base_sha256"] == base and entry["created"] and entry["recipe"]
        assert (entry["calibration_key"] == built["calibration"]["key"]) == (
            entry["precision"] == "int8")
        # Every variant describes itself like the base model (class names, input size).
        info = read_model_info(path)
        assert info.input_hw == INPUT_HW and info.num_classes == 4
        assert info.precision == entry["precision"], name  # read back from the file itself
    assert built["variants"]["int8-ort"]["recipe"] == "qdq-u8s8-perchannel"
    assert built["variants"]["int8-trt"]["recipe"] == "qdq-s8s8-symmetric-perchannel"
    assert built["calibration"]["frames_per_lux_bin"] == {n: 2 for _, _, n in LUX_BINS}
    assert verify(built) == []


def test_verify_reports_a_changed_file(built: dict, tmp_path: Path) -> None:
    copy = dict(built, _path=str(tmp_path / "variants.json"),
                variants={"fp16": dict(built["variants"]["fp16"])})
    target = tmp_path / built["variants"]["fp16"]["file"]
    target.write_bytes(variant_path(built, "fp16").read_bytes() + b"\0")
    assert verify(copy) == [f"fp16: {target} sha256 differs from the manifest"]


def test_fp16_has_fp32_io_and_fp16_weights(built: dict, frame: np.ndarray) -> None:
    model = onnx.load(str(variant_path(built, "fp16")))
    float_t = TensorProto.FLOAT
    assert [i.type.tensor_type.elem_type for i in model.graph.input] == [float_t]
    assert [o.type.tensor_type.elem_type for o in model.graph.output] == [float_t]
    inits = _initializers(model)
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert convs and all(inits[n.input[1]].data_type == TensorProto.FLOAT16 for n in convs)
    ref, out = _run(variant_path(built, "fp32"), frame), _run(variant_path(built, "fp16"), frame)
    assert out.dtype == np.float32 and out.shape == ref.shape
    np.testing.assert_allclose(out[:, 4:], ref[:, 4:], atol=FP16_SCORE_ATOL, rtol=0)
    np.testing.assert_allclose(out[:, :4], ref[:, :4], atol=FP16_BOX_ATOL, rtol=0)


def test_convert_fp16_refuses_a_non_fp32_model(tiny: Path) -> None:
    model = onnx.load(str(tiny))  # a model whose declared output is not fp32
    model.graph.output[0].type.tensor_type.elem_type = TensorProto.FLOAT16
    with pytest.raises(ValueError, match="float16|fp32"):  # the library's check or ours
        convert_fp16(model)


def _qdq(model: onnx.ModelProto) -> tuple[list[onnx.NodeProto], list[onnx.NodeProto]]:
    q = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    return q, dq


def test_int8_trt_is_symmetric_signed_qdq(built: dict) -> None:
    model = onnx.load(str(variant_path(built, "int8-trt")))
    inits = _initializers(model)
    q, dq = _qdq(model)
    assert q and dq
    for node in q + dq:
        zp = numpy_helper.to_array(inits[node.input[2]])
        assert zp.dtype == np.int8 and not zp.any(), node.name
    for node in dq:  # TensorRT only dequantizes int8 (no int32 bias DequantizeLinear)
        if node.input[0] in inits:
            assert inits[node.input[0]].data_type == TensorProto.INT8, node.name
    weights = [inits[n.input[0]] for n in dq if n.input[0] in inits]
    conv_weights = [w for w in weights if len(w.dims) == 4]
    assert len(conv_weights) == 4  # every conv quantized, weights stored as int8
    for n in dq:
        if n.input[0] in inits and len(inits[n.input[0]].dims) == 4:  # per-channel scales
            assert inits[n.input[1]].dims[0] == inits[n.input[0]].dims[0]


def test_int8_trt_quantizes_only_convolution_inputs(built: dict) -> None:
    """TensorRT's placement: Q/DQ feed convolutions; SiLU and the rest stay float."""
    model = onnx.load(str(variant_path(built, "int8-trt")))
    consumers: dict[str, list[str]] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n.op_type)
    _, dq = _qdq(model)
    assert {op for n in dq for op in consumers[n.output[0]]} == {"Conv"}
    assert built["variants"]["int8-trt"]["int8_recipe"]["op_types"] == ["Conv"]


def test_int8_ort_has_unsigned_activations(built: dict) -> None:
    model = onnx.load(str(variant_path(built, "int8-ort")))
    inits = _initializers(model)
    q, dq = _qdq(model)
    act_zp = [numpy_helper.to_array(inits[n.input[2]]) for n in q]
    assert act_zp and all(z.dtype == np.uint8 for z in act_zp)
    conv_w = [inits[n.input[0]] for n in dq
              if n.input[0] in inits and len(inits[n.input[0]].dims) == 4]
    assert conv_w and all(w.data_type == TensorProto.INT8 for w in conv_w)
    assert built["variants"]["int8-ort"]["int8_recipe"]["activation_type"] == "QUInt8"


def _conv_weight_is_float(model: onnx.ModelProto, conv_name: str) -> bool:
    """True when the named Conv reads its weight straight from a float initializer."""
    inits = _initializers(model)
    (conv,) = [n for n in model.graph.node if n.name == conv_name]
    w = inits.get(conv.input[1])
    return w is not None and w.data_type == TensorProto.FLOAT


def test_mixed_keeps_first_conv_and_head_float(built: dict) -> None:
    mixed = onnx.load(str(variant_path(built, "int8-trt-mixed")))
    full = onnx.load(str(variant_path(built, "int8-trt")))
    for conv in ("/model/stem/Conv", "/model/detect/cv/Conv", "/model/detect/out/Conv"):
        assert _conv_weight_is_float(mixed, conv), conv
        assert not _conv_weight_is_float(full, conv), conv
    assert not _conv_weight_is_float(mixed, "/model/b1/Conv")  # the body stays int8
    assert built["variants"]["int8-ort-mixed"]["mixed"] is True


def test_float_prefixes_keep_named_blocks_float(tiny: Path, tmp_path: Path) -> None:
    manifest = load_manifest(build_variants(
        tiny, tmp_path, calibration=CALIB, include=("int8",), float_prefixes=("/model/b1",)))
    assert set(manifest["variants"]) == {"int8-trt", "int8-ort"}
    model = onnx.load(str(variant_path(manifest, "int8-ort")))
    assert _conv_weight_is_float(model, "/model/b1/Conv")
    assert not _conv_weight_is_float(model, "/model/stem/Conv")
    assert manifest["variants"]["int8-ort"]["recipe"] == "qdq-u8s8-perchannel+float:/model/b1"
    with pytest.raises(ValueError, match="no node name starts with '/model/b9'"):
        build_variants(tiny, tmp_path, calibration=CALIB, include=("int8",),
                       float_prefixes=("/model/b9",))


def test_node_selection_on_the_tiny_graph(tiny: Path) -> None:
    model = onnx.load(str(tiny))
    assert nodes.decode_tail(model) == ["/model/detect/Reshape", "/Split", "/Sigmoid_box",
                                        "/Mul", "/Sigmoid", "/Concat"]
    assert nodes.first_convolution(model) == ["/model/stem/Conv"]
    with pytest.raises(ValueError, match="head-prefix"):
        nodes.head_nodes(model, "/model.22")


@pytest.mark.parametrize("profile", FUSION_PROFILES)
def test_every_precision_runs_on_ort_and_agrees_with_fp32(
    built: dict, frame: np.ndarray, profile: str
) -> None:
    ref = _run(variant_path(built, "fp32"), frame, "max")
    scores, boxes = ref[:, 4:], ref[:, :4]
    assert scores.std() > 0.05 and boxes.std() > 3  # outputs vary per anchor
    tolerances = {"fp32": (FP32_ATOL, FP32_ATOL), "fp16": (FP16_SCORE_ATOL, FP16_BOX_ATOL),
                  "int8": (INT8_SCORE_ATOL, INT8_BOX_ATOL)}
    for name, entry in built["variants"].items():
        out = _run(variant_path(built, name), frame, profile)
        score_tol, box_tol = tolerances[entry["precision"]]
        assert np.abs(out[:, 4:] - scores).max() <= score_tol, (name, profile)
        assert np.abs(out[:, :4] - boxes).max() <= box_tol, (name, profile)
        corr = np.corrcoef(out[:, 4:].ravel(), scores.ravel())[0, 1]
        assert corr >= INT8_MIN_CORR, (name, profile, corr)


# --- CLI --------------------------------------------------------------------------------

def test_cli_defaults_match_the_library() -> None:
    from edge_trt_ros.cli import variants as cli

    assert set(cli.CALIB_METHODS) == set(calib_mod.METHODS)
    assert CalibrationSpec.count == cli.DEFAULT_CALIB_COUNT
    assert CalibrationSpec.method == cli.DEFAULT_CALIB_METHOD
    assert cli.DEFAULT_HEAD_PREFIX == nodes.DEFAULT_HEAD_PREFIX


def test_cli_builds_and_evaluates(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert cli_main([
        "variants", str(tiny), "--out", str(tmp_path / "v"), "--calib-count", "4",
        "--no-augment", "--evaluate", "--eval-count", "4", "--threads", "1",
    ]) == 0
    manifest = json.loads((tmp_path / "v" / "variants.json").read_text())
    assert manifest["calibration"]["spec"]["augment"] is None
    assert manifest["evaluation"]["how"]["frames"] == 4
    fp16 = manifest["variants"]["fp16"]["evaluation"]
    assert set(fp16["per_lux_bin_map50"]) == {n for _, _, n in LUX_BINS}
    assert "overall" in fp16["map50_drop_vs_fp32"]
    assert "| int8-ort | int8 | qdq-u8s8-perchannel |" in capsys.readouterr().out


# --- the shipped model --------------------------------------------------------------------

@pytest.mark.skipif(not SHIPPED.is_file(), reason="shipped model not present")
def test_shipped_model_fp16_and_int8_map_close_to_fp32(tmp_path: Path) -> None:
    """fp16 and both int8 recipes of the shipped model on 40 test frames (10 per lux bin).

    Calibrated on only 32 frames to keep the test fast. The full-split guard (drop <= 0.005
    overall and per lux bin) is measured by bench/precision_cpu.py; here the overall drop
    must stay within 0.01 (fp16) and 0.03 (int8). Measured when written: fp32 1.000,
    fp16 and int8-ort 1.000, int8-trt 0.984.
    """
    from edge_trt_ros.variants.evaluate import evaluate_variants

    path = build_variants(SHIPPED, tmp_path, calibration=CalibrationSpec(count=32))
    manifest = evaluate_variants(path, count=40, threads=2,
                                 names=["fp32", "fp16", "int8-ort", "int8-trt"])
    results = {n: manifest["variants"][n]["evaluation"] for n in manifest["variants"]}
    assert results["fp32"]["map50"] > 0.95
    assert results["fp16"]["map50_drop_vs_fp32"]["overall"] <= 0.01, results["fp16"]
    for name in ("int8-ort", "int8-trt"):
        assert results[name]["map50_drop_vs_fp32"]["overall"] <= 0.03, results[name]
    assert manifest["evaluation"]["how"]["frames"] == 40
