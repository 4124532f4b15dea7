"""The fp16 variant: weights and activations in half precision, fp32 inputs/outputs kept,
and the ops whose ranges fp16 cannot hold kept in fp32.

Made with onnxconverter-common (``keep_io_types=True``), so the letterbox and decode code
stays the same for every variant and TensorRT builds it strongly typed as written.
``block`` names the nodes kept fp32 (chosen by :mod:`.headroom` from measured ranges). The
converter (1.16) surrounds each blocked node with casts, so an edge between two blocked
nodes becomes fp32 -> fp16 -> fp32: the very overflow the block list exists to avoid
(NaN on a uniform-noise frame, seen on the shipped model), and a blocked node that feeds a
graph output can leave that output float16. :func:`convert_fp16` repairs both after the
conversion: round trips through fp16 are removed (never less exact), a float16 graph output
gets a final cast to fp32, and the result is checked to have fp32 I/O and no fp16 edge
between blocked nodes.

ONNX Runtime's CPU provider has few fp16 kernels and inserts casts around the rest, so on a
CPU this variant is about as fast as fp32 and hides fp16 overflow: it exists for GPUs.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import onnx
from onnx import TensorProto, helper
from onnxconverter_common import float16

RECIPE = "onnxconverter-common float16, keep_io_types"
_FLOAT, _HALF = TensorProto.FLOAT, TensorProto.FLOAT16


def recipe(blocked: int) -> str:
    """The manifest's recipe string for an fp16 file with ``blocked`` ops kept fp32."""
    return RECIPE + (f", {blocked} ops kept fp32 (measured headroom)" if blocked else "")


def convert_fp16(model: onnx.ModelProto, block: Iterable[str] = ()) -> onnx.ModelProto:
    """An fp16 copy of ``model`` with fp32 graph inputs and outputs and the ``block`` nodes
    computing in fp32 (checked)."""
    blocked = list(dict.fromkeys(block))
    unknown = set(blocked) - {n.name for n in model.graph.node}
    if unknown:
        raise ValueError(f"fp16 block list names nodes not in the model: {sorted(unknown)[:5]}")
    with warnings.catch_warnings():
        # It warns once per weight below fp16's range (BatchNorm variances ~1e-9), which
        # it clamps to 1e-7: harmless next to BatchNorm's epsilon, and far too chatty.
        warnings.filterwarnings("ignore", "the float32 number", UserWarning)
        converted = float16.convert_float_to_float16(
            model, keep_io_types=True, node_block_list=blocked or None)
    if not isinstance(converted, onnx.ModelProto):  # pragma: no cover - library contract
        raise TypeError("onnxconverter-common returned no ModelProto")
    if blocked:
        _remove_fp16_round_trips(converted)
        _cast_outputs_to_fp32(converted)
        _drop_dead_casts(converted)
    onnx.checker.check_model(converted)
    wrong = [v.name for v in (*converted.graph.input, *converted.graph.output)
             if v.type.tensor_type.elem_type != _FLOAT]
    if wrong:
        raise ValueError(f"fp16 conversion left non-fp32 graph inputs/outputs {wrong}; the "
                         f"variants expect an fp32 base model")
    leaks = fp16_edges_between(converted, set(blocked))
    if leaks:
        raise ValueError(f"fp16 conversion routes {len(leaks)} tensors between fp32-kept "
                         f"nodes through fp16, e.g. {leaks[:3]}")
    return converted


def _cast_to(node: onnx.NodeProto) -> int | None:
    if node.op_type != "Cast":
        return None
    return next((int(a.i) for a in node.attribute if a.name == "to"), None)


def _producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {out: n for n in model.graph.node for out in n.output}


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type
             for v in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output)}
    types.update({i.name: i.data_type for i in model.graph.initializer})
    return types


def _remove_fp16_round_trips(model: onnx.ModelProto) -> None:
    """Rewire Cast(fp32) <- Cast(fp16) <- fp32 tensor to read the fp32 tensor directly."""
    producers = _producers(model)
    types = _elem_types(model)
    outputs = {o.name for o in model.graph.output}
    keep = []
    renames: dict[str, str] = {}
    for node in model.graph.node:
        first = producers.get(node.input[0]) if _cast_to(node) == _FLOAT else None
        if (first is not None and _cast_to(first) == _HALF
                and types.get(first.input[0]) == _FLOAT and node.output[0] not in outputs):
            renames[node.output[0]] = first.input[0]
            continue
        keep.append(node)
    for node in keep:
        for i, name in enumerate(node.input):
            node.input[i] = renames.get(name, name)
    del model.graph.node[:]
    model.graph.node.extend(keep)


def _cast_outputs_to_fp32(model: onnx.ModelProto) -> None:
    """A graph output the converter left float16 gets a final Cast to fp32 under its name."""
    types = _elem_types(model)
    for out in model.graph.output:
        if types.get(out.name) != _HALF:
            continue
        inner = f"{out.name}__fp16"
        for node in model.graph.node:
            node.output[:] = [inner if o == out.name else o for o in node.output]
            node.input[:] = [inner if i == out.name else i for i in node.input]
        model.graph.node.append(helper.make_node("Cast", [inner], [out.name], to=_FLOAT,
                                                 name=f"{out.name}__to_fp32"))
        out.type.tensor_type.elem_type = _FLOAT


def _drop_dead_casts(model: onnx.ModelProto) -> None:
    """Remove Cast nodes whose output nothing reads any more (repeat until none)."""
    while True:
        used = {i for n in model.graph.node for i in n.input} | {
            o.name for o in model.graph.output}
        dead = [n for n in model.graph.node if n.op_type == "Cast" and n.output[0] not in used]
        if not dead:
            return
        for n in dead:
            model.graph.node.remove(n)


def fp16_edges_between(model: onnx.ModelProto, blocked: set[str]) -> list[str]:
    """Tensors from one fp32-kept node to another that pass through an fp16 cast."""
    if not blocked:
        return []
    producers = _producers(model)
    leaks = []
    for node in model.graph.node:
        if node.name not in blocked:
            continue
        for name in node.input:
            cast = producers.get(name)
            if cast is None or _cast_to(cast) != _FLOAT:
                continue
            half = producers.get(cast.input[0])
            if half is None or _cast_to(half) != _HALF:
                continue
            source = producers.get(half.input[0])
            if source is not None and source.name in blocked:
                leaks.append(name)
    return leaks
