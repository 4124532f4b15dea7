"""The int8 layout rewrites: what they match, that ONNX Runtime's outputs stay bit-identical,
and that the shipped int8-ort file carries them."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from edge_trt_ros.resources import DEFAULT_MODEL, find_resource
from edge_trt_ros.variants.nhwc_layout import output_mismatch, rewrite_for_nhwc

RNG = np.random.default_rng(7)


def _init(name: str, values: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(values, name)


def _qdq_model(*, resize_mode: str = "nearest", q_scale_after_resize: float = 0.05
               ) -> onnx.ModelProto:
    """Conv -> Q/DQ -> 2x nearest Resize -> Q/DQ, then a two-scale YOLO-style head: box
    distributions (Concat -> Reshape -> Transpose -> Softmax) and class scores (Concat ->
    Sigmoid -> Transpose), the head outputs through Q/DQ on one scale and float on the other.
    """
    nodes, inits = [], []

    def conv(name: str, x: str, cout: int, cin: int, k: int, stride: int = 1) -> str:
        inits.append(_init(f"{name}.w", RNG.normal(0, 0.3, (cout, cin, k, k)).astype(np.float32)))
        inits.append(_init(f"{name}.b", RNG.normal(0, 0.1, (cout,)).astype(np.float32)))
        nodes.append(helper.make_node("Conv", [x, f"{name}.w", f"{name}.b"], [name],
                                      pads=[k // 2] * 4, strides=[stride] * 2))
        return name

    def qdq(x: str, scale: float, zero: int) -> str:
        s, z = f"{x}.s{scale}", f"{x}.z"
        inits.append(_init(s, np.array(scale, np.float32)))
        inits.append(_init(z, np.array(zero, np.uint8)))
        nodes.append(helper.make_node("QuantizeLinear", [x, s, z], [f"{x}.q"]))
        nodes.append(helper.make_node("DequantizeLinear", [f"{x}.q", s, z], [f"{x}.dq"]))
        return f"{x}.dq"

    a = qdq(conv("c1", "images", 8, 3, 3), 0.05, 128)
    inits.append(_init("scales", np.array([1, 1, 2, 2], np.float32)))
    nodes.append(helper.make_node("Resize", [a, "", "scales"], ["up"], mode=resize_mode,
                                  coordinate_transformation_mode="asymmetric",
                                  nearest_mode="floor"))
    # the Q after the Resize takes the DQ's parameters by name when they are equal
    if q_scale_after_resize == 0.05:
        nodes.append(helper.make_node("QuantizeLinear", ["up", "c1.s0.05", "c1.z"], ["up.q"]))
        nodes.append(helper.make_node("DequantizeLinear", ["up.q", "c1.s0.05", "c1.z"],
                                      ["up.dq"]))
        up = "up.dq"
    else:
        up = qdq("up", q_scale_after_resize, 128)
    for kind, ch in (("box", 8), ("cls", 3)):
        flat = []
        for scale, stride in ((0, 1), (1, 2)):
            out = conv(f"{kind}{scale}", up, ch, 8, 1, stride)
            if scale == 0:
                out = qdq(out, 0.1, 128)
            inits.append(_init(f"{kind}{scale}.shape", np.array([1, ch, -1], np.int64)))
            nodes.append(helper.make_node("Reshape", [out, f"{kind}{scale}.shape"],
                                          [f"{kind}{scale}.flat"]))
            flat.append(f"{kind}{scale}.flat")
        nodes.append(helper.make_node("Concat", flat, [f"{kind}.cat"], axis=2))
    inits.append(_init("dist.shape", np.array([1, 2, 4, 320], np.int64)))
    nodes += [helper.make_node("Reshape", ["box.cat", "dist.shape"], ["dist.r"]),
              helper.make_node("Transpose", ["dist.r"], ["dist.t"], perm=[0, 3, 1, 2]),
              helper.make_node("Softmax", ["dist.t"], ["dist"], axis=-1),
              helper.make_node("Sigmoid", ["cls.cat"], ["cls.sig"]),
              helper.make_node("Transpose", ["cls.sig"], ["scores"], perm=[0, 2, 1])]
    graph = helper.make_graph(
        nodes, "qdq", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("dist", TensorProto.FLOAT, [1, 320, 2, 4]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 320, 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return list(session.run(None, {"images": x}))


def test_rewrites_upsample_and_both_head_forms_with_identical_outputs() -> None:
    model = _qdq_model()
    rewritten, changed = rewrite_for_nhwc(model)
    assert sorted(c.split(":")[0] for c in changed) == ["head", "head", "upsample"]
    ops = [n.op_type for n in rewritten.graph.node]
    assert "Resize" not in ops
    # the only Transposes left are NHWC <-> NCHW ones ONNX Runtime cancels against its own
    perms = [list(n.attribute[0].ints) for n in rewritten.graph.node if n.op_type == "Transpose"]
    assert all(p in ([0, 2, 3, 1], [0, 3, 1, 2]) for p in perms)
    for seed in range(3):
        x = np.random.default_rng(seed).random((1, 3, 8, 8), dtype=np.float32) * 4 - 2
        for a, b in zip(_run(model, x), _run(rewritten, x), strict=True):
            assert a.shape == b.shape
            assert np.array_equal(a, b)
    assert output_mismatch(model, rewritten) == ""


def test_leaves_what_it_cannot_prove_equal() -> None:
    linear = _qdq_model(resize_mode="linear")
    _, changed = rewrite_for_nhwc(linear)
    assert not any(c.startswith("upsample:") for c in changed)  # interpolation is not a copy
    requantized = _qdq_model(q_scale_after_resize=0.07)
    _, changed = rewrite_for_nhwc(requantized)
    assert not any(c.startswith("upsample:") for c in changed)  # the Q after it rescales


def test_output_mismatch_reports_a_changed_value() -> None:
    model = _qdq_model()
    other = onnx.ModelProto()
    other.CopyFrom(model)
    weight = next(t for t in other.graph.initializer if t.name == "box1.b")
    weight.CopyFrom(_init("box1.b", numpy_helper.to_array(weight) + 0.5))
    assert "differs" in output_mismatch(model, other)


def test_shipped_int8_ort_file_carries_the_rewrites() -> None:
    model_path = find_resource(DEFAULT_MODEL)
    variants = model_path.parent / "variants"
    manifest = json.loads((variants / "variants.json").read_text())
    entry = manifest["variants"]["int8-ort"]
    assert entry["recipe"].endswith("+nhwc-layout")
    assert sorted(entry["nhwc_layout_rewrites"]) == [
        "head:/model/detect/Concat_3", "head:/model/detect/Concat_7",
        "upsample:/model/up/Resize", "upsample:/model/up_1/Resize"]
    ops = [n.op_type for n in onnx.load(str(variants / entry["file"])).graph.node]
    assert "Resize" not in ops and "Softmax" in ops
