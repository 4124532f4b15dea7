"""What a detector model is, read from its ONNX file: input geometry, output layout, classes.

Everything here is decided once at load time, so a model the package cannot run fails with
an error that names what was found instead of producing garbage boxes later.
"""

from __future__ import annotations

import ast
import mmap
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import onnx

from edge_trt_ros.errors import ModelLayoutError
from edge_trt_ros.vision.decode import LAYOUTS

DEFAULT_IMGSZ = 640  # Ultralytics' default when a dynamic model carries no imgsz



# Metadata key of a variant file's precision; fp16/int8 files carry it, the fp32 base does not.
PRECISION_KEY = "edge_trt_ros.precision"


@dataclass(frozen=True)
class ModelInfo:
    path: str
    input_name: str
    input_hw: tuple[int, int]
    input_layout: str  # nchw | nhwc
    output_names: tuple[str, ...]
    output_layout: str  # one of vision.decode.LAYOUTS
    num_classes: int
    class_names: tuple[str, ...]
    metadata: dict[str, str]

    @property
    def precision(self) -> str:
        """What a variant file holds (written by ``edge-trt variants``); fp32 otherwise."""
        return self.metadata.get(PRECISION_KEY, "fp32")


def _dims(value_info: onnx.ValueInfoProto) -> list[int | str]:
    shape = value_info.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in shape.dim]


def parse_names(raw: str | None) -> list[str] | None:
    """Class names from Ultralytics-style metadata: "{0: 'a', 1: 'b'}" or "['a', 'b']"."""
    if not raw:
        return None
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return None
    if isinstance(value, dict):
        return [str(value[k]) for k in sorted(value, key=int)]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return None


def _imgsz(raw: str | None) -> tuple[int, int] | None:
    if not raw:
        return None
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return None
    if isinstance(value, int):
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return int(value[0]), int(value[1])
    return None


def _input_geometry(
    dims: list[int | str], meta: dict[str, str]
) -> tuple[tuple[int, int], str]:
    if len(dims) != 4:
        raise ModelLayoutError(f"expected a 4-D image input, found shape {dims}")
    if dims[1] == 3:
        layout, h, w = "nchw", dims[2], dims[3]
    elif dims[3] == 3:
        layout, h, w = "nhwc", dims[1], dims[2]
    else:
        raise ModelLayoutError(f"input {dims} has no 3-channel axis (NCHW or NHWC)")
    if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
        return (h, w), layout
    fallback = _imgsz(meta.get("imgsz")) or (DEFAULT_IMGSZ, DEFAULT_IMGSZ)
    return fallback, layout


def _check_batch(input_dims: list[int | str], shapes: list[list[int | str]]) -> None:
    """The detector runs one frame per call: a fixed batch other than 1 would load and then
    fail every frame inside the engine, so it is refused here, naming the batch."""
    batch = input_dims[0] if input_dims else None
    if isinstance(batch, int) and batch != 1:
        raise ModelLayoutError(
            f"the model's input has a fixed batch of {batch} (shape {input_dims}); the detector "
            "runs one frame at a time: re-export it with batch 1 (YOLOv5/Ultralytics: "
            "--batch-size 1 / batch=1) or a dynamic batch (--dynamic)")
    fixed = [s for s in shapes if s and isinstance(s[0], int) and s[0] > 1]
    if fixed:
        raise ModelLayoutError(
            f"outputs {fixed} have a fixed batch of {fixed[0][0]}; re-export the model with "
            "batch 1 or a dynamic batch")


def _raw_heads(shapes: list[list[int | str]]) -> list[list[int | str]]:
    """YOLOv5's undecoded detection-head outputs ([1, 3, H, W, 5+nc]) beside its decoded one."""
    return [s for s in shapes if len(s) == 5]


def _check_efficientnms(shapes: list[list[int | str]]) -> None:
    """num_dets [1, 1], boxes [1, K, 4], scores [1, K], classes [1, K] (TensorRT's
    EfficientNMS plugin): anything else would decode into garbage or fail every frame."""
    num, boxes, scores, classes = shapes[:4]
    fits = (len(num) in (1, 2) and all(d in (1, "?") or isinstance(d, str) for d in num)
            and len(boxes) == 3 and boxes[2] == 4 and len(scores) == 2 and len(classes) == 2)
    ks = {k for k in (boxes[1] if len(boxes) == 3 else None, scores[-1] if scores else None,
                      classes[-1] if classes else None) if isinstance(k, int)}
    if not fits or len(ks) > 1:
        raise ModelLayoutError(
            f"outputs {shapes[:4]} are not EfficientNMS's num_dets [1, 1], boxes [1, K, 4], "
            "scores [1, K], classes [1, K]")


def _check_override(layout: str, shapes: list[list[int | str]],
                    names_count: int | None) -> int:
    """The number of classes for a forced ``output_layout``; raises when the outputs cannot
    be that layout or the class count cannot be known."""
    first = shapes[0] if shapes else []
    if layout == "efficientnms":
        if len(shapes) < 4:
            raise ModelLayoutError(f"output_layout efficientnms needs four outputs (num_dets, "
                                   f"boxes, scores, classes); the model has {shapes}")
        _check_efficientnms(shapes)
    elif len(first) != 3:
        raise ModelLayoutError(f"output_layout {layout} needs a 3-D first output; the model's "
                               f"outputs are {shapes}")
    a, b = (first[1], first[2]) if len(first) == 3 else (None, None)
    need = {"yolov8": (a, 4, "[1, 4+nc, N]"), "yolov5": (b, 5, "[1, N, 5+nc]")}.get(layout)
    if need is not None:
        dim, extra, form = need
        if isinstance(dim, int) and dim <= extra:  # names that do not fit are the user's call
            raise ModelLayoutError(f"output {first} is not {layout} {form}: no class scores")
        if names_count is None:
            if not isinstance(dim, int):
                raise ModelLayoutError(f"output_layout {layout}: the class count cannot be read "
                                       f"from output {first}; set class_names")
            return dim - extra
        return names_count
    if layout == "end2end" and isinstance(b, int) and b != 6:
        raise ModelLayoutError(f"output {first} is not end2end [1, K, 6] (x1, y1, x2, y2, "
                               "score, class)")
    if names_count is None:
        raise ModelLayoutError(f"output_layout {layout} carries class ids only: set class_names "
                               "(the model's metadata has no names)")
    return names_count


def detect_output_layout(
    shapes: list[list[int | str]], names_count: int | None, meta: dict[str, str]
) -> tuple[str, int]:
    """(layout, number of classes) from output shapes; raises naming what was found."""
    if len(shapes) >= 4 and all(len(s) >= 2 for s in shapes[:4]) and len(shapes[1]) == 3 \
            and shapes[1][-1] == 4:
        _check_efficientnms(shapes)
        return "efficientnms", names_count or 0
    if len(shapes) != 1 or len(shapes[0]) != 3:
        heads = _raw_heads(shapes)
        hint = (f"; {len(heads)} of them look like YOLOv5's raw detection heads {heads}: "
                "re-export with only the decoded output (YOLOv5 export.py without --train), "
                "or cut them off with onnx.utils.extract_model") if heads else ""
        raise ModelLayoutError(
            f"unsupported outputs {shapes}: expected one [1, 4+nc, N] (YOLOv8), [1, N, 5+nc] "
            f"(YOLOv5/v7), [1, K, 6] (NMS inside) or four EfficientNMS outputs{hint}"
        )
    _, a, b = shapes[0]
    end2end_flag = str(meta.get("end2end", meta.get("nms", ""))).lower() == "true"
    if isinstance(b, int) and b == 6 and (end2end_flag or names_count not in (None, 1)):
        return "end2end", names_count or 0
    if names_count is not None:
        if a == 4 + names_count:
            return "yolov8", names_count
        if b == 5 + names_count:
            return "yolov5", names_count
        raise ModelLayoutError(
            f"output [1, {a}, {b}] does not fit {names_count} classes from the metadata "
            f"(YOLOv8 wants [1, {4 + names_count}, N], YOLOv5 [1, N, {5 + names_count}])"
        )
    if isinstance(a, int) and isinstance(b, int):
        if a < b and a > 4:
            return "yolov8", a - 4
        if b < a and b > 5:
            return "yolov5", b - 5
    raise ModelLayoutError(
        f"cannot tell the layout of output [1, {a}, {b}] without class names: "
        f"set class_names or output_layout"
    )


# Protobuf field numbers (onnx.proto): ModelProto.graph, GraphProto.initializer /
# sparse_initializer, TensorProto.name.
_MODEL_GRAPH, _GRAPH_INITIALIZER, _GRAPH_SPARSE_INITIALIZER, _TENSOR_NAME = 7, 5, 15, 8


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _fields(buf: memoryview, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, raw field start, value start, value end) of each field in buf[start:end]."""
    pos = start
    while pos < end:
        first = pos
        key, pos = _varint(buf, pos)
        wire = key & 7
        if wire == 0:
            _, stop = _varint(buf, pos)
        elif wire == 1:
            stop = pos + 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            stop = pos + size
        elif wire == 5:
            stop = pos + 4
        else:
            raise ValueError(f"wire type {wire}")
        if stop > end:
            raise ValueError("field past the end of its message")
        yield key >> 3, first, pos, stop
        pos = stop


def _length_delimited(field: int, payload: bytes) -> bytes:
    return _encode_varint(field << 3 | 2) + _encode_varint(len(payload)) + payload


def _without_weights(buf: memoryview) -> bytes:
    """The serialized model with every initializer cut down to its name: what
    :func:`read_model_info` reads, without parsing (and holding the GIL over) the weights,
    which for a large variant is hundreds of milliseconds that stall the node's other
    threads during a switch."""
    out = bytearray()
    for field, first, start, stop in _fields(buf, 0, len(buf)):
        if field != _MODEL_GRAPH:
            out += buf[first:stop]
            continue
        graph = bytearray()
        for gfield, gfirst, gstart, gstop in _fields(buf, start, stop):
            if gfield == _GRAPH_INITIALIZER:
                names = [bytes(buf[s:e]) for f, _, s, e in _fields(buf, gstart, gstop)
                         if f == _TENSOR_NAME]
                graph += _length_delimited(gfield, b"".join(
                    _length_delimited(_TENSOR_NAME, n) for n in names))
            elif gfield != _GRAPH_SPARSE_INITIALIZER:
                graph += buf[gfirst:gstop]
        out += _length_delimited(_MODEL_GRAPH, bytes(graph))
    return bytes(out)


def _load_structure(path: Path) -> onnx.ModelProto:
    """The model's graph, I/O and metadata, its initializers reduced to their names; a file
    the scan cannot follow is parsed whole, so onnx reports what is wrong with it."""
    try:
        with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            view = memoryview(mm)
            try:
                slim = _without_weights(view)
            finally:
                view.release()
    except (ValueError, IndexError, OSError):
        return onnx.load(str(path), load_external_data=False)
    model = onnx.ModelProto()
    model.ParseFromString(slim)
    return model


def read_model_info(
    path: str | os.PathLike[str],
    class_names: list[str] | None = None,
    output_layout: str = "auto",
) -> ModelInfo:
    """Inspect an ONNX detector; ``class_names``/``output_layout`` override what it says."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model not found: {path}")
    try:
        model = _load_structure(path)
    except Exception as exc:  # onnx raises DecodeError and friends on garbage files
        raise ModelLayoutError(f"{path} is not a readable ONNX model: {exc}") from exc
    meta = {p.key: p.value for p in model.metadata_props}
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ModelLayoutError(f"expected one image input, found {[i.name for i in inputs]}")
    input_dims = _dims(inputs[0])
    input_hw, input_layout = _input_geometry(input_dims, meta)
    names = class_names or parse_names(meta.get("names"))
    shapes = [_dims(o) for o in model.graph.output]
    if not shapes:
        raise ModelLayoutError(f"{path} has no outputs")
    if output_layout != "auto" and output_layout not in LAYOUTS:
        raise ModelLayoutError(f"unknown output_layout {output_layout!r} (choose from {LAYOUTS})")
    _check_batch(input_dims, shapes)
    if output_layout == "auto":
        layout, nc = detect_output_layout(shapes, len(names) if names else None, meta)
    else:
        layout = output_layout
        nc = _check_override(layout, shapes, len(names) if names else None)
    if not names:
        names = [f"class_{i}" for i in range(nc)]
    return ModelInfo(
        path=str(path),
        input_name=inputs[0].name,
        input_hw=input_hw,
        input_layout=input_layout,
        output_names=tuple(o.name for o in model.graph.output),
        output_layout=layout,
        num_classes=nc or len(names),
        class_names=tuple(names),
        metadata=meta,
    )
