"""Small ONNX detector models with known outputs, built in the tests (not shipped)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


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
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


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
