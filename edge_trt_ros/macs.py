"""Multiply-accumulate count of an ONNX model, for effective TOPS/W (2 ops per MAC).

Counts the layers that dominate detector compute: Conv, ConvTranspose, Gemm and MatMul
(QLinear/Integer variants count the same). Shapes come from ONNX shape inference; a
symbolic dimension (a dynamic batch) counts as 1 and is logged.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import onnx
from onnx import ModelProto, NodeProto, helper, shape_inference

log = logging.getLogger("edge_trt_ros.macs")

Shape = list[int]


def conv_output_size(
    size: int, kernel: int, stride: int, dilation: int, pad_begin: int, pad_end: int,
    auto_pad: str = "NOTSET",
) -> int:  # fmt: skip
    """Output length of one spatial axis of a Conv (ONNX semantics)."""
    effective = dilation * (kernel - 1) + 1
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        return math.ceil(size / stride)
    if auto_pad == "VALID":
        return math.ceil((size - effective + 1) / stride)
    return (size + pad_begin + pad_end - effective) // stride + 1


def _dims(t: onnx.TypeProto, name: str, symbolic: list[str]) -> Shape | None:
    if not t.HasField("tensor_type") or not t.tensor_type.HasField("shape"):
        return None
    out = []
    for d in t.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            out.append(int(d.dim_value))
        else:
            if not symbolic or symbolic[-1] != name:
                symbolic.append(name)
            out.append(1)
    return out


def _shapes(model: ModelProto) -> dict[str, Shape]:
    symbolic: list[str] = []
    g = model.graph
    shapes: dict[str, Shape] = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        s = _dims(vi.type, vi.name, symbolic)
        if s is not None:
            shapes[vi.name] = s
    for init in g.initializer:
        shapes[init.name] = list(init.dims)
    if symbolic:
        log.warning(
            "%d tensors have symbolic dimensions, counted as 1 (first: %s); the MAC count is "
            "a lower bound: export the model with static shapes for an exact figure",
            len(symbolic), symbolic[0],
        )
    return shapes


def _attrs(node: NodeProto) -> dict[str, object]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _conv_macs(node: NodeProto, shapes: dict[str, Shape], x_i: int, w_i: int) -> int:
    x, w = shapes.get(node.input[x_i]), shapes.get(node.input[w_i])
    if x is None or w is None:
        raise ValueError(f"Conv {node.name!r}: unknown input or weight shape")
    a = _attrs(node)
    spatial = len(w) - 2
    kernel = list(a.get("kernel_shape", w[2:]))  # type: ignore[call-overload]
    out = shapes.get(node.output[0])
    if out is None or len(out) != len(x):
        strides = list(a.get("strides", [1] * spatial))  # type: ignore[call-overload]
        dil = list(a.get("dilations", [1] * spatial))  # type: ignore[call-overload]
        pads = list(a.get("pads", [0] * 2 * spatial))  # type: ignore[call-overload]
        auto_pad = a.get("auto_pad", b"NOTSET")
        auto = auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad)
        out_sp = [
            conv_output_size(x[2 + i], kernel[i], strides[i], dil[i], pads[i], pads[i + spatial],
                             auto)
            for i in range(spatial)
        ]  # fmt: skip
        out = [x[0], w[0], *out_sp]
    # weight (C_out, C_in/groups, k...): every output element needs C_in/groups * k MACs
    return int(math.prod(out) * w[1] * math.prod(kernel))


def _conv_transpose_macs(node: NodeProto, shapes: dict[str, Shape]) -> int:
    x, w = shapes.get(node.input[0]), shapes.get(node.input[1])
    if x is None or w is None:
        raise ValueError(f"ConvTranspose {node.name!r}: unknown input or weight shape")
    kernel = list(_attrs(node).get("kernel_shape", w[2:]))  # type: ignore[call-overload]
    # weight (C_in, C_out/groups, k...): every input element scatters into C_out/groups * k
    return int(math.prod(x) * w[1] * math.prod(kernel))


def _gemm_macs(node: NodeProto, shapes: dict[str, Shape]) -> int:
    a_s, b_s = shapes.get(node.input[0]), shapes.get(node.input[1])
    if a_s is None or b_s is None:
        raise ValueError(f"Gemm {node.name!r}: unknown input shapes")
    at = _attrs(node)
    m, k = (a_s[1], a_s[0]) if at.get("transA", 0) else (a_s[0], a_s[1])
    n = b_s[0] if at.get("transB", 0) else b_s[1]
    return int(m * k * n)


def _broadcast(a: Sequence[int], b: Sequence[int]) -> list[int]:
    n = max(len(a), len(b))
    a = [1] * (n - len(a)) + list(a)
    b = [1] * (n - len(b)) + list(b)
    return [max(x, y) for x, y in zip(a, b, strict=True)]


def _matmul_macs(node: NodeProto, shapes: dict[str, Shape], a_i: int = 0, b_i: int = 1) -> int:
    a_s, b_s = shapes.get(node.input[a_i]), shapes.get(node.input[b_i])
    if a_s is None or b_s is None:
        raise ValueError(f"MatMul {node.name!r}: unknown input shapes")
    a = [1, *a_s] if len(a_s) == 1 else list(a_s)  # 1-D operands per numpy.matmul
    b = [*b_s, 1] if len(b_s) == 1 else list(b_s)
    batch = _broadcast(a[:-2], b[:-2])
    return int(math.prod(batch) * a[-2] * a[-1] * b[-1])


def count_macs(model: str | Path | ModelProto) -> int:
    """Total MACs of one inference of ``model`` (a path or a loaded ModelProto)."""
    proto = onnx.load(str(model)) if isinstance(model, (str, Path)) else model
    # Exporters may declare intermediate shapes with symbolic dims, which inference keeps:
    # drop them so every shape is derived from the (concrete) graph inputs.
    proto = ModelProto.FromString(proto.SerializeToString())
    del proto.graph.value_info[:]
    try:
        inferred = shape_inference.infer_shapes(proto, data_prop=True)
    except Exception as e:  # fall back to the shapes the file already declares
        log.warning("ONNX shape inference failed (%s); using declared shapes", e)
        inferred = proto
    shapes = _shapes(inferred)
    total = 0
    for node in inferred.graph.node:
        op = node.op_type
        if op in ("Conv", "ConvInteger"):
            total += _conv_macs(node, shapes, 0, 1)
        elif op == "QLinearConv":
            total += _conv_macs(node, shapes, 0, 3)
        elif op == "ConvTranspose":
            total += _conv_transpose_macs(node, shapes)
        elif op == "Gemm":
            total += _gemm_macs(node, shapes)
        elif op in ("MatMul", "MatMulInteger"):
            total += _matmul_macs(node, shapes)
        elif op == "QLinearMatMul":
            total += _matmul_macs(node, shapes, 0, 3)
    return total


__all__ = ["conv_output_size", "count_macs"]
