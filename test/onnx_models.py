"""Small ONNX detector models with known outputs, built in the tests (not shipped)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _save(graph: onnx.GraphProto, path: Path, metadata: dict[str, str] | None) -> Path:
    """Opset 17, IR 8, the metadata, checked, written."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def constant_output_model(
    path: Path,
    outputs: dict[str, np.ndarray],
    input_hw: tuple[int, int] = (320, 320),
    metadata: dict[str, str] | None = None,
    nhwc: bool = False,
) -> Path:
    """A model whose outputs are fixed tensors (plus 0 x the input, so the input is used)."""
    h, w = input_hw
    in_shape = [1, h, w, 3] if nhwc else [1, 3, h, w]
    nodes = [
        helper.make_node("ReduceMax", ["images"], ["m"], keepdims=0),
        helper.make_node("Mul", ["m", "zero"], ["z"]),
    ]
    inits = [numpy_helper.from_array(np.zeros((), np.float32), "zero")]
    graph_outputs = []
    for i, (name, value) in enumerate(outputs.items()):
        const = f"c{i}"
        inits.append(numpy_helper.from_array(value, const))
        if value.dtype == np.float32:
            nodes.append(helper.make_node("Add", [const, "z"], [name]))
            elem = TensorProto.FLOAT
        else:
            nodes.append(helper.make_node("Identity", [const], [name]))
            elem = helper.np_dtype_to_tensor_dtype(value.dtype)
        graph_outputs.append(helper.make_tensor_value_info(name, elem, list(value.shape)))
    graph = helper.make_graph(
        nodes, "const_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, in_shape)],
        graph_outputs, inits,
    )
    return _save(graph, path, metadata)


def yolov8_output(boxes_cxcywh: list[tuple[float, float, float, float]],
                  class_scores: list[list[float]], n: int = 64) -> np.ndarray:
    """[1, 4+nc, n]: the given boxes first, zero-score filler after them."""
    nc = len(class_scores[0])
    out = np.zeros((1, 4 + nc, n), np.float32)
    out[0, :4, :] = np.array([10, 10, 4, 4], np.float32)[:, None]
    for i, (box, scores) in enumerate(zip(boxes_cxcywh, class_scores, strict=True)):
        out[0, :4, i] = box
        out[0, 4:, i] = scores
    return out


def names_metadata(names: list[str], imgsz: tuple[int, int]) -> dict[str, str]:
    """Ultralytics-style metadata."""
    return {
        "names": str(dict(enumerate(names))),
        "imgsz": str(list(imgsz)),
        "stride": "32",
        "task": "detect",
    }


TINY_INPUT_HW = (64, 96)
TINY_NAMES = "{0: 'scratch', 1: 'crack', 2: 'dent', 3: 'stain'}"


def _conv_block(prefix: str, x: str, cin: int, cout: int, stride: int,
                rng: np.random.Generator, nodes_: list, inits: list) -> str:
    """Conv -> BatchNorm -> SiLU (Sigmoid, Mul), named like an Ultralytics export."""
    w = rng.normal(0, np.sqrt(2.0 / (cin * 9)), (cout, cin, 3, 3)).astype(np.float32)
    inits += [
        numpy_helper.from_array(w, f"{prefix}.w"),
        numpy_helper.from_array(rng.uniform(0.8, 1.2, cout).astype(np.float32), f"{prefix}.g"),
        numpy_helper.from_array(rng.normal(0, 0.1, cout).astype(np.float32), f"{prefix}.b"),
        numpy_helper.from_array(rng.normal(0, 0.1, cout).astype(np.float32), f"{prefix}.m"),
        numpy_helper.from_array(rng.uniform(0.5, 1.5, cout).astype(np.float32), f"{prefix}.v"),
    ]
    nodes_ += [
        helper.make_node("Conv", [x, f"{prefix}.w"], [f"{prefix}/c"], name=f"{prefix}/Conv",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[stride, stride]),
        helper.make_node("BatchNormalization",
                         [f"{prefix}/c", f"{prefix}.g", f"{prefix}.b", f"{prefix}.m",
                          f"{prefix}.v"], [f"{prefix}/bn"], name=f"{prefix}/BatchNormalization"),
        helper.make_node("Sigmoid", [f"{prefix}/bn"], [f"{prefix}/s"], name=f"{prefix}/Sigmoid"),
        helper.make_node("Mul", [f"{prefix}/bn", f"{prefix}/s"], [f"{prefix}/y"],
                         name=f"{prefix}/Mul"),
    ]
    return f"{prefix}/y"


def tiny_detector(path: Path) -> Path:
    """A 64x96 detector with the shipped model's structure in miniature (YOLOv8 layout)."""
    rng = np.random.default_rng(7)
    h, w = TINY_INPUT_HW
    nodes_: list = []
    inits: list = []
    x = _conv_block("/model/stem", "images", 3, 8, 2, rng, nodes_, inits)
    x = _conv_block("/model/b1", x, 8, 16, 2, rng, nodes_, inits)
    x = _conv_block("/model/detect/cv", x, 16, 16, 1, rng, nodes_, inits)
    n = (h // 4) * (w // 4)
    hw = rng.normal(0, 0.5, (8, 16, 1, 1)).astype(np.float32)
    inits += [
        numpy_helper.from_array(hw, "head.w"),
        numpy_helper.from_array(np.array([0.5, 0.5, 0.2, 0.2, -1, -1, -1, -1], np.float32),
                                "head.b"),
        numpy_helper.from_array(np.array([1, 8, n], np.int64), "shape"),
        numpy_helper.from_array(np.array([4, 4], np.int64), "split"),
        numpy_helper.from_array(np.array(float(w), np.float32), "scale"),
    ]
    nodes_ += [
        helper.make_node("Conv", [x, "head.w", "head.b"], ["/model/detect/o"],
                         name="/model/detect/out/Conv", kernel_shape=[1, 1]),
        helper.make_node("Reshape", ["/model/detect/o", "shape"], ["r"],
                         name="/model/detect/Reshape"),
        helper.make_node("Split", ["r", "split"], ["box", "cls"], name="/Split", axis=1),
        helper.make_node("Sigmoid", ["box"], ["box_s"], name="/Sigmoid_box"),
        helper.make_node("Mul", ["box_s", "scale"], ["box_px"], name="/Mul"),
        helper.make_node("Sigmoid", ["cls"], ["cls_s"], name="/Sigmoid"),
        helper.make_node("Concat", ["box_px", "cls_s"], ["output0"], name="/Concat", axis=1),
    ]
    graph = helper.make_graph(
        nodes_, "tiny_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, h, w])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 8, n])], inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = {"names": TINY_NAMES, "imgsz": str(list(TINY_INPUT_HW)), "task": "detect"}
    for key, value in meta.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def fails_on_bright_frames_model(path: Path, outputs: dict[str, np.ndarray],
                                 input_hw: tuple[int, int] = (320, 320),
                                 metadata: dict[str, str] | None = None) -> Path:
    """Like :func:`constant_output_model`, but ONNX Runtime fails at run time on a frame whose
    brightest pixel is white: its max (1.0 after normalisation) indexes past a 1-element
    Gather. A real engine fault, triggered by the input, for tests of failure handling."""
    h, w = input_hw
    nodes = [
        helper.make_node("ReduceMax", ["images"], ["m"], keepdims=0),
        helper.make_node("Cast", ["m"], ["i"], to=TensorProto.INT64),
        helper.make_node("Gather", ["one", "i"], ["g"], axis=0),
        helper.make_node("Mul", ["g", "zero"], ["z"]),
    ]
    inits = [numpy_helper.from_array(np.zeros((), np.float32), "zero"),
             numpy_helper.from_array(np.ones(1, np.float32), "one")]
    graph_outputs = []
    for k, (name, value) in enumerate(outputs.items()):
        inits.append(numpy_helper.from_array(value, f"c{k}"))
        nodes.append(helper.make_node("Add", [f"c{k}", "z"], [name]))
        graph_outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT,
                                                           list(value.shape)))
    graph = helper.make_graph(
        nodes, "fails_on_bright",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, h, w])],
        graph_outputs, inits)
    return _save(graph, path, metadata)
