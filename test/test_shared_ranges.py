"""Shared quantization ranges around Concat: the groups, the merged ranges, and that ONNX
Runtime's quantizer then gives every Concat input the output's scale."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import (
    CalibrationMethod,
    QuantFormat,
    QuantType,
    TensorsData,
    load_tensors_data,
    quantize_static,
    save_tensors_data,
)
from onnxruntime.quantization.calibrate import TensorData

from edge_trt_ros.variants.shared_ranges import (
    share_concat_ranges,
    shared_range_groups,
    write_shared_ranges,
)

# x -> Conv -> t -> Split -> (a, b); b -> Conv -> c; Concat(a, b, c) -> d -> Conv -> y
RANGES = {"x": (0.0, 1.0), "t": (-1.0, 3.0), "a": (-1.0, 2.0), "b": (-0.5, 3.0),
          "c": (-2.0, 9.0), "d": (-2.0, 9.0), "y": (-4.0, 4.0)}
SHARED = ("a", "b", "c", "d", "t")


def c2f_like_model() -> onnx.ModelProto:
    rng = np.random.default_rng(0)

    def weight(name: str, cout: int, cin: int) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.normal(size=(cout, cin, 1, 1)).astype(np.float32),
                                       name)

    nodes = [
        helper.make_node("Conv", ["x", "w0"], ["t"], name="conv0"),
        helper.make_node("Split", ["t", "sizes"], ["a", "b"], name="split", axis=1),
        helper.make_node("Conv", ["b", "w1"], ["c"], name="conv1"),
        helper.make_node("Concat", ["a", "b", "c"], ["d"], name="concat", axis=1),
        helper.make_node("Conv", ["d", "w2"], ["y"], name="conv2"),
    ]
    graph = helper.make_graph(
        nodes, "c2f_like",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
        [weight("w0", 8, 4), weight("w1", 4, 4), weight("w2", 4, 12),
         numpy_helper.from_array(np.array([4, 4], dtype=np.int64), "sizes")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def ranges_file(path: Path) -> Path:
    data = {k: TensorData(lowest=np.array(lo, dtype=np.float32),
                          highest=np.array(hi, dtype=np.float32))
            for k, (lo, hi) in RANGES.items()}
    save_tensors_data(TensorsData(CalibrationMethod.MinMax, data), path)
    return path


def concat_scales(model_path: Path) -> tuple[float, list[float]]:
    """The Concat's output Q scale and the scales of the DQs feeding it."""
    model = onnx.load(str(model_path))
    init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    concat = next(n for n in model.graph.node if n.op_type == "Concat")
    out_q = next(n for n in model.graph.node
                 if n.op_type == "QuantizeLinear" and n.input[0] == concat.output[0])
    ins = [float(init[producer[i].input[1]]) for i in concat.input]
    return float(init[out_q.input[1]]), ins


def quantize(src: Path, ranges: Path, dst: Path) -> Path:
    quantize_static(str(src), str(dst), calibration_data_reader=None,
                    quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, per_channel=True,
                    calibration_cache_path=str(ranges))
    return dst


def test_groups_follow_concat_and_data_movement_ops() -> None:
    groups = shared_range_groups(c2f_like_model(), set(RANGES))
    assert groups == [sorted(SHARED)]  # x and y stay on their own
    assert shared_range_groups(c2f_like_model(), {"a", "d"}) == [["a", "d"]]


def test_merged_range_is_the_union_and_others_unchanged(tmp_path: Path) -> None:
    ranges = load_tensors_data(ranges_file(tmp_path / "r.json"))
    shared, changed = share_concat_ranges(c2f_like_model(), ranges)
    assert changed == len(SHARED)
    for t in SHARED:
        lo, hi = shared.data[t].range_value
        assert (float(lo), float(hi)) == (-2.0, 9.0)
    for t in ("x", "y"):
        assert tuple(float(v) for v in shared.data[t].range_value) == RANGES[t]


def test_quantized_concat_inputs_take_the_output_scale(tmp_path: Path) -> None:
    src = tmp_path / "m.onnx"
    onnx.save(c2f_like_model(), str(src))
    ranges = ranges_file(tmp_path / "r.json")
    out_scale, in_scales = concat_scales(quantize(src, ranges, tmp_path / "plain.onnx"))
    assert any(s != pytest.approx(out_scale) for s in in_scales)  # own ranges: requantize

    shared, changed = write_shared_ranges(src, ranges, tmp_path / "shared.json")
    assert changed == len(SHARED)
    dst = quantize(src, shared, tmp_path / "shared.onnx")
    out_scale, in_scales = concat_scales(dst)
    assert in_scales == pytest.approx([out_scale] * 3)
    # and the file still runs
    x = np.random.default_rng(1).uniform(0, 1, (1, 4, 8, 8)).astype(np.float32)
    y = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    assert y[0].shape == (1, 4, 8, 8) and np.isfinite(y[0]).all()
