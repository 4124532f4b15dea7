"""Exact rewrites of a u8s8 Q/DQ graph so ONNX Runtime's NHWC int8 kernels stop reshuffling.

ONNX Runtime runs each ``QLinearConv`` in NHWC and keeps the tensors between them NHWC.
Two parts of a YOLO graph fall outside that and cost an int8 frame more than they cost
fp32, where the NCHWc kernels have fast versions of them:

* **Nearest upsampling.** ``DQ -> Resize(nearest, x2) -> Q`` with one scale becomes a
  ``Resize`` on uint8 that takes the generic per-element path (0.5 ms for 128 x 48 x 64 on
  the project's 2-vCPU VM). Rewritten here as uint8 copies in NHWC: Unsqueeze, Concat of
  ``factor`` copies, Reshape, once along W and once along H.
* **The detect head.** Each scale's output is transposed NHWC -> NCHW, flattened to
  ``[1, C, HW]``, concatenated over the scales, reshaped and transposed back to
  anchor-major ``[1, N, ...]`` for the Softmax/Sigmoid. Rewritten as a Reshape of each
  NHWC output straight to ``[1, HW, ...]`` and one Concat over the anchors.

Both are layout changes only: every value the graph computes is the same (the builder
checks that the rewritten file's outputs equal the original's bit for bit before it keeps
it). A graph without these patterns is left as it is. The fp32 file gains nothing from the
head rewrite (measured 0.99x), so only the int8 files for ONNX Runtime get it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edge_trt_ros.variants.nodes import name_every_node

log = logging.getLogger(__name__)


@dataclass
class _Graph:
    """Producer/consumer index over a model being rewritten (rebuilt per rewrite)."""

    model: onnx.ModelProto

    def __post_init__(self) -> None:
        g = self.model.graph
        self.producer = {o: n for n in g.node for o in n.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in g.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.initializers = {t.name: t for t in g.initializer}
        self.shapes = {v.name: [d.dim_value if d.HasField("dim_value") else 0
                                for d in v.type.tensor_type.shape.dim]
                       for v in list(g.value_info) + list(g.input) + list(g.output)}
        self.graph_outputs = {o.name for o in g.output}

    def only_consumer(self, tensor: str) -> onnx.NodeProto | None:
        users = self.consumers.get(tensor, [])
        return users[0] if len(users) == 1 and tensor not in self.graph_outputs else None

    def constant(self, tensor: str) -> np.ndarray | None:
        init = self.initializers.get(tensor)
        return None if init is None else numpy_helper.to_array(init)

    def add_int64(self, name: str, values: list[int]) -> str:
        self.model.graph.initializer.append(numpy_helper.from_array(
            np.asarray(values, np.int64), name))
        return name


def _attrs(node: onnx.NodeProto) -> dict[str, object]:
    values = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in values.items()}


def _splice(model: onnx.ModelProto, before: dict[str, list[onnx.NodeProto]],
            removed: set[str]) -> None:
    """Put new nodes where the named node was (keeps the order topological), drop others."""
    order: list[onnx.NodeProto] = []
    for node in model.graph.node:
        order += before.get(node.name, [])
        if node.name not in removed:
            order.append(node)
    del model.graph.node[:]
    model.graph.node.extend(order)


def _upsample_factors(g: _Graph, resize: onnx.NodeProto) -> tuple[int, int] | None:
    a = _attrs(resize)
    if (a.get("mode", "nearest") != "nearest"
            or a.get("coordinate_transformation_mode", "half_pixel") != "asymmetric"
            or a.get("nearest_mode", "round_prefer_floor") != "floor"):
        return None
    scales = g.constant(resize.input[2]) if len(resize.input) > 2 and resize.input[2] else None
    if scales is None or scales.shape != (4,) or not np.all(scales[:2] == 1):
        return None
    fh, fw = float(scales[2]), float(scales[3])
    if fh < 1 or fw < 1 or not (fh.is_integer() and fw.is_integer()) or fh * fw == 1:
        return None
    return int(fh), int(fw)


def upsample_as_copies(model: onnx.ModelProto) -> list[str]:
    """Rewrite each ``uint8 -> DQ -> Resize(nearest, integer scale) -> Q`` with the same
    scale and zero point on both sides as uint8 copies in NHWC; return the Resize names."""
    g = _Graph(model)
    before: dict[str, list[onnx.NodeProto]] = {}
    removed: set[str] = set()
    done: list[str] = []
    for resize in list(model.graph.node):
        if resize.op_type != "Resize":
            continue
        factors = _upsample_factors(g, resize)
        dq = g.producer.get(resize.input[0])
        q = g.only_consumer(resize.output[0])
        shape = g.shapes.get(resize.input[0], [])
        if (factors is None or dq is None or dq.op_type != "DequantizeLinear"
                or q is None or q.op_type != "QuantizeLinear"
                or list(dq.input[1:]) != list(q.input[1:])
                or len(shape) != 4 or 0 in shape):
            continue
        (fh, fw), (n, c, h, w) = factors, shape
        p = resize.name
        x = f"{p}/nhwc"
        nodes = [helper.make_node("Transpose", [dq.input[0]], [x], perm=[0, 2, 3, 1],
                                  name=f"{p}/to_nhwc")]
        # along W: [n,h,w,c] -> [n,h,w,1,c] -> fw copies -> [n,h,w*fw,c]; then H the same way
        for axis, factor, shape_after in ((3, fw, [n, h, w * fw, c]),
                                          (2, fh, [n, h * fh, w * fw, c])):
            if factor == 1:
                continue
            u, cat, out = f"{p}/u{axis}", f"{p}/cat{axis}", f"{p}/r{axis}"
            nodes += [
                helper.make_node("Unsqueeze", [x, g.add_int64(f"{p}/axis{axis}", [axis])],
                                 [u], name=u),
                helper.make_node("Concat", [u] * factor, [cat], axis=axis, name=cat),
                helper.make_node("Reshape", [cat, g.add_int64(f"{p}/shape{axis}",
                                                              shape_after)], [out], name=out),
            ]
            x = out
        nodes.append(helper.make_node("Transpose", [x], [q.output[0]], perm=[0, 3, 1, 2],
                                      name=f"{p}/to_nchw"))
        before[resize.name] = nodes
        removed |= {resize.name, q.name}
        if g.only_consumer(dq.output[0]) is resize:
            removed.add(dq.name)
        done.append(p)
    _splice(model, before, removed)
    return done


def _transpose_perm(node: onnx.NodeProto | None) -> list[int] | None:
    if node is None or node.op_type != "Transpose":
        return None
    return list(_attrs(node).get("perm", []))  # type: ignore[call-overload]


_HeadInput = tuple[onnx.NodeProto, onnx.NodeProto | None, list[int]]


def _head_inputs(g: _Graph, concat: onnx.NodeProto) -> list[_HeadInput] | None:
    """(Reshape, its DQ or None, NCHW shape) per input of ``Concat(axis 2)`` over
    ``Reshape([1, C, -1])`` of 4-D outputs, or None when the Concat is something else."""
    if _attrs(concat).get("axis") not in (2, -1):
        return None
    found = []
    for tensor in concat.input:
        reshape = g.producer.get(tensor)
        if reshape is None or reshape.op_type != "Reshape" or g.only_consumer(tensor) is None:
            return None
        target = g.constant(reshape.input[1])
        shape = g.shapes.get(reshape.input[0], [])
        if (target is None or len(shape) != 4 or 0 in shape or shape[0] != 1
                or target.tolist() not in ([1, shape[1], -1], [1, shape[1], shape[2] * shape[3]])):
            return None
        dq = g.producer.get(reshape.input[0])
        dq = dq if (dq is not None and dq.op_type == "DequantizeLinear"
                    and g.only_consumer(reshape.input[0]) is reshape) else None
        found.append((reshape, dq, shape))
    return found


def _anchor_major(g: _Graph, concat: onnx.NodeProto, inputs: list[_HeadInput], output: str,
                  per_anchor: Callable[[int], list[int]]) -> list[onnx.NodeProto]:
    """Each input reshaped from NHWC to ``[1, HW, *per_anchor(C)]``, concatenated on axis 1."""
    nodes: list[onnx.NodeProto] = []
    parts = []
    for k, (reshape, dq, (_, c, h, w)) in enumerate(inputs):
        p = f"{concat.name}/scale{k}"
        source = dq.input[0] if dq is not None else reshape.input[0]
        nhwc, anchors = f"{p}/nhwc", f"{p}/anchors"
        nodes += [helper.make_node("Transpose", [source], [nhwc], perm=[0, 2, 3, 1],
                                   name=f"{p}/to_nhwc"),
                  helper.make_node("Reshape", [nhwc, g.add_int64(f"{p}/shape",
                                                                 [1, h * w, *per_anchor(c)])],
                                   [anchors], name=anchors)]
        if dq is not None:
            nodes.append(helper.make_node("DequantizeLinear", [anchors, *dq.input[1:]],
                                          [f"{p}/dq"], name=f"{p}/dq"))
            anchors = f"{p}/dq"
        parts.append(anchors)
    nodes.append(helper.make_node("Concat", parts, [output], axis=1, name=concat.name))
    return nodes


def _grouped(groups: int, channels: int) -> list[int]:
    return [groups, channels // groups]


def head_in_anchor_order(model: onnx.ModelProto) -> list[str]:
    """Rewrite the YOLOv8 head's flatten-concat-transpose as anchor-major reshapes; return
    the Concat names rewritten. Two forms are recognised:

    * ``Concat -> Reshape([1, G, C/G, N]) -> Transpose(0, 3, 1, 2)`` (the box distribution)
    * ``Concat -> Sigmoid -> Transpose(0, 2, 1)`` (the class scores)
    """
    g = _Graph(model)
    before: dict[str, list[onnx.NodeProto]] = {}
    removed: set[str] = set()
    done: list[str] = []
    for concat in list(model.graph.node):
        inputs = _head_inputs(g, concat) if concat.op_type == "Concat" else None
        if inputs is None:
            continue
        channels = {shape[1] for _, _, shape in inputs}
        if len(channels) != 1:
            continue
        (c,) = channels
        nxt = g.only_consumer(concat.output[0])
        if nxt is not None and nxt.op_type == "Reshape":
            target = g.constant(nxt.input[1])
            transpose = g.only_consumer(nxt.output[0])
            if (target is None or len(target) != 4 or target[1] * target[2] != c
                    or _transpose_perm(transpose) != [0, 3, 1, 2] or transpose is None):
                continue
            groups = int(target[1])
            nodes = _anchor_major(g, concat, inputs, transpose.output[0],
                                  functools.partial(_grouped, groups))
            removed |= {nxt.name, transpose.name}
        elif nxt is not None and nxt.op_type == "Sigmoid":
            transpose = g.only_consumer(nxt.output[0])
            if _transpose_perm(transpose) != [0, 2, 1] or transpose is None:
                continue
            joined = f"{concat.name}/anchors"
            nodes = _anchor_major(g, concat, inputs, joined, lambda ch: [ch])
            nodes.append(helper.make_node("Sigmoid", [joined], [transpose.output[0]],
                                          name=nxt.name))
            removed |= {nxt.name, transpose.name}
        else:
            continue
        for reshape, dq, _ in inputs:
            removed.add(reshape.name)
            if dq is not None:
                removed.add(dq.name)
        removed.add(concat.name)
        before[concat.name] = nodes
        done.append(concat.name)
    _splice(model, before, removed)
    return done


def rewrite_for_nhwc(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """A copy of ``model`` with both rewrites applied where they match, and what changed
    (``upsample:<Resize name>``, ``head:<Concat name>``)."""
    out = onnx.shape_inference.infer_shapes(model)
    name_every_node(out)
    changed = [f"upsample:{n}" for n in upsample_as_copies(out)]
    out = onnx.shape_inference.infer_shapes(_drop_stale(out))
    changed += [f"head:{n}" for n in head_in_anchor_order(out)]
    out = _drop_stale(out)
    if changed:
        onnx.checker.check_model(out)
        log.info("NHWC layout rewrites: %s", ", ".join(changed))
    return out, changed


def _drop_stale(model: onnx.ModelProto) -> onnx.ModelProto:
    """Shapes inferred before a rewrite can be stale after it: drop them, keep I/O; and
    drop the constants only the removed nodes used."""
    del model.graph.value_info[:]
    used = {i for n in model.graph.node for i in n.input}
    kept = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    return model


def output_mismatch(original: onnx.ModelProto, rewritten: onnx.ModelProto,
                    seeds: tuple[int, ...] = (0, 1)) -> str:
    """Empty when ONNX Runtime (CPU, all optimisations) gives both graphs bit-identical
    outputs on uniform random inputs in 0..1, else what differed."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    a = ort.InferenceSession(original.SerializeToString(), options,
                             providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(rewritten.SerializeToString(), options,
                             providers=["CPUExecutionProvider"])
    (inp,) = a.get_inputs()
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    for seed in seeds:
        x = np.random.default_rng(seed).random(shape, dtype=np.float32)
        for out, u, v in zip(a.get_outputs(), a.run(None, {inp.name: x}),
                             b.run(None, {inp.name: x}), strict=True):
            if u.shape != v.shape or not np.array_equal(u, v, equal_nan=True):
                diff = (float(np.nanmax(np.abs(u - v))) if u.shape == v.shape
                        else f"shape {v.shape} vs {u.shape}")
                return f"output {out.name} differs on input seed {seed} ({diff})"
    return ""
