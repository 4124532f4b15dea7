"""fp16 headroom on the CPU: stress frames, range measurement, the ops kept fp32, and the
converter repairs (no fp16 round trip between fp32-kept nodes, fp32 graph outputs).

Whether the fp16 file then stays finite needs real fp16 kernels: the CPU provider computes
most fp16 ops in fp32 and hides overflow, so that part runs on the GPU
(test_onnxruntime_cuda.py). Here a crafted model's class-logit convolution reaches ~100k on
bright frames (fp16's maximum is 65,504), like the shipped model's head did on noise.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_models import TINY_INPUT_HW, TINY_NAMES
from onnxconverter_common import float16

from edge_trt_ros.variants.build import build_variants
from edge_trt_ros.variants.calibration import CalibrationSpec
from edge_trt_ros.variants.fp16 import convert_fp16, fp16_edges_between
from edge_trt_ros.variants.headroom import (
    FP16_MAX,
    STRESS_KINDS,
    HeadroomSpec,
    blocked_nodes,
    measure_headroom,
    stress_image,
)
from edge_trt_ros.variants.manifest import load_manifest
from edge_trt_ros.variants.nodes import decode_tail

H, W = TINY_INPUT_HW
CALIB = CalibrationSpec(count=4, augment=None)
SPEC = HeadroomSpec(calibration_frames=4, stress_per_kind=1)
BIG_W = 4000.0  # 27 taps x 4000 = 108,000 on an all-white input


def overflow_detector(path: Path) -> Path:
    """YOLOv8-layout detector whose class-logit conv overflows fp16 on bright frames."""
    n = H * W
    inits = [
        numpy_helper.from_array(np.full((4, 3, 3, 3), BIG_W, np.float32), "cls.w"),
        numpy_helper.from_array(np.full(4, -3.0e4, np.float32), "cls.b"),
        numpy_helper.from_array(np.full((4, 3, 1, 1), 0.2, np.float32), "box.w"),
        numpy_helper.from_array(np.array([1, 4, n], np.int64), "shape"),
        numpy_helper.from_array(np.array(float(W), np.float32), "scale"),
    ]
    nodes = [
        helper.make_node("Conv", ["images", "cls.w", "cls.b"], ["logits"],
                         name="/model/detect/cls/Conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Reshape", ["logits", "shape"], ["logits_r"],
                         name="/model/detect/cls/Reshape"),
        helper.make_node("Sigmoid", ["logits_r"], ["scores"], name="/Sigmoid"),
        helper.make_node("Conv", ["images", "box.w"], ["box"], name="/model/detect/box/Conv",
                         kernel_shape=[1, 1]),
        helper.make_node("Reshape", ["box", "shape"], ["box_r"], name="/model/detect/box/Reshape"),
        helper.make_node("Sigmoid", ["box_r"], ["box_s"], name="/Sigmoid_box"),
        helper.make_node("Mul", ["box_s", "scale"], ["box_px"], name="/Mul"),
        helper.make_node("Concat", ["box_px", "scores"], ["output0"], name="/Concat", axis=1),
    ]
    graph = helper.make_graph(
        nodes, "overflow_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, H, W])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 8, n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in {"names": TINY_NAMES, "imgsz": str(list(TINY_INPUT_HW))}.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def overflow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return overflow_detector(tmp_path_factory.mktemp("overflow") / "overflow.onnx")


def _output_types(model: onnx.ModelProto) -> dict[str, int]:
    """Node name -> element type of its first output (the converter renames the outputs of
    blocked nodes, so tensors are found through their producers)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type
             for v in (*inferred.graph.value_info, *inferred.graph.output)}
    return {n.name: types[n.output[0]] for n in model.graph.node if n.output[0] in types}


def test_stress_frames_are_deterministic_and_extreme() -> None:
    for kind in STRESS_KINDS:
        a, b = stress_image(kind, 1, (64, 48)), stress_image(kind, 1, (64, 48))
        assert a.shape == (48, 64, 3) and a.dtype == np.uint8
        np.testing.assert_array_equal(a, b)
    assert stress_image("white", 0, (8, 8)).min() == 255
    assert stress_image("black", 0, (8, 8)).max() == 0
    noise = stress_image("uniform_noise", 0, (64, 48))
    assert noise.min() == 0 and noise.max() == 255
    # glare: a large part of the frame clipped to white
    assert np.mean(stress_image("saturated", 0, (160, 120)) == 255) > 0.2
    impulse = stress_image("impulse_noise", 0, (160, 120))
    assert 0.05 < np.mean((impulse == 0).all(axis=2) | (impulse == 255).all(axis=2)) < 0.5
    with pytest.raises(ValueError, match="unknown stress kind"):
        stress_image("fog", 0, (8, 8))


def test_headroom_spec_limits() -> None:
    assert HeadroomSpec().limit == FP16_MAX / 4
    with pytest.raises(ValueError, match="margin"):
        HeadroomSpec(margin=0.5)
    with pytest.raises(ValueError, match="at least one frame"):
        HeadroomSpec(calibration_frames=0, stress_per_kind=0)


def test_overflowing_producer_and_consumers_are_kept_fp32(overflow: Path) -> None:
    report = measure_headroom(overflow, input_name="images", input_hw=TINY_INPUT_HW,
                              spec=SPEC, calibration=CALIB)
    # the logits (and their reshape) exceed 65,504 / 4; on the white frame most of all
    assert set(report.over_limit) == {"logits", "logits_r"}
    assert report.over_limit["logits"]["worst_frame"] in {"saturated", "white"}  # both clip
    assert report.over_limit["logits"]["absmax"] == pytest.approx(27 * BIG_W - 3.0e4, rel=1e-3)
    # producer, the reshape that carries the values, and the sigmoid that reads them
    assert report.blocked == ["/model/detect/cls/Conv", "/model/detect/cls/Reshape", "/Sigmoid"]
    assert report.blocked_op_types == {"Conv": 1, "Reshape": 1, "Sigmoid": 1}
    assert report.largest_kept_fp16["tensor"] in {"box_px", "output0"}  # box pixels
    assert report.largest_kept_fp16["absmax"] <= W
    assert report.frames == {"calibration": 4, **dict.fromkeys(STRESS_KINDS, 1)}
    manifest_view = report.to_dict()
    assert manifest_view["spec"]["limit"] == FP16_MAX / 4
    assert manifest_view["blocked_nodes"] == report.blocked


def test_blocked_nodes_rule_on_given_ranges(overflow: Path) -> None:
    model = onnx.load(str(overflow))
    keep, over = blocked_nodes(model, {"box": 1.0e5, "logits": 10.0}, 16376.0)
    assert over == {"box": 1.0e5}
    assert keep == ["/model/detect/box/Conv", "/model/detect/box/Reshape"]


def test_converted_model_keeps_blocked_ops_fp32_with_fp32_io(overflow: Path) -> None:
    report = measure_headroom(overflow, input_name="images", input_hw=TINY_INPUT_HW,
                              spec=SPEC, calibration=CALIB)
    base = onnx.load(str(overflow))
    model16 = convert_fp16(base, report.blocked)
    types = _output_types(model16)
    assert all(types[name] == TensorProto.FLOAT for name in report.blocked)
    assert types["/model/detect/box/Conv"] == TensorProto.FLOAT16  # the rest is converted
    assert [v.type.tensor_type.elem_type for v in (*model16.graph.input, *model16.graph.output)
            ] == [TensorProto.FLOAT, TensorProto.FLOAT]
    assert fp16_edges_between(model16, set(report.blocked)) == []
    session = ort.InferenceSession(model16.SerializeToString(), providers=["CPUExecutionProvider"])
    reference = ort.InferenceSession(str(overflow), providers=["CPUExecutionProvider"])
    for kind in ("white", "uniform_noise", "black"):
        frame = np.transpose(stress_image(kind, 0, (W, H)), (2, 0, 1))[None] / np.float32(255)
        got = session.run(None, {"images": frame.astype(np.float32)})[0]
        want = reference.run(None, {"images": frame.astype(np.float32)})[0]
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got, want, atol=0.25)  # boxes in px (fp16), scores 0..1


def test_block_list_repairs_what_the_converter_gets_wrong(tiny: Path) -> None:
    """onnxconverter-common 1.16 routes edges between blocked nodes through fp16 and leaves
    a blocked output float16; convert_fp16 removes both problems."""
    model = onnx.load(str(tiny))
    block = ["/model/b1/Conv", "/model/b1/BatchNormalization", "/model/b1/Sigmoid",
             "/model/b1/Mul"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = float16.convert_float_to_float16(model, keep_io_types=True, node_block_list=block)
        raw_tail = float16.convert_float_to_float16(model, keep_io_types=True,
                                                    node_block_list=decode_tail(model))
    assert fp16_edges_between(raw, set(block))  # the bug, as the converter ships it
    assert raw_tail.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT16
    fixed = convert_fp16(model, block)
    assert fp16_edges_between(fixed, set(block)) == []
    fixed_tail = convert_fp16(model, decode_tail(model))
    assert fixed_tail.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    x = np.random.default_rng(0).random((1, 3, H, W), dtype=np.float32)
    want = ort.InferenceSession(str(tiny), providers=["CPUExecutionProvider"]).run(
        None, {"images": x})[0]
    for m in (fixed, fixed_tail):
        got = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]
                                   ).run(None, {"images": x})[0]
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, atol=0.1)


def test_unknown_block_names_are_refused(tiny: Path) -> None:
    with pytest.raises(ValueError, match="not in the model"):
        convert_fp16(onnx.load(str(tiny)), ["/model/nope/Conv"])


def test_build_records_the_headroom_in_the_manifest(overflow: Path, tmp_path: Path) -> None:
    path = build_variants(overflow, tmp_path, calibration=CALIB, include=("fp32", "fp16"),
                          fp16_headroom=SPEC)
    entry = load_manifest(path)["variants"]["fp16"]
    room = entry["fp16_headroom"]
    assert room["blocked_nodes"] == ["/model/detect/cls/Conv", "/model/detect/cls/Reshape",
                                     "/Sigmoid"]
    assert room["tensors_over_limit"]["logits"]["worst_frame"] in {"saturated", "white"}
    assert room["spec"]["margin"] == SPEC.margin
    assert entry["recipe"].endswith("3 ops kept fp32 (measured headroom)")
    types = _output_types(onnx.load(str(tmp_path / entry["file"])))
    assert types["/model/detect/cls/Conv"] == TensorProto.FLOAT
