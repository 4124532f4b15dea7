"""A dynamic-batch copy of a batch-1 variant file, so frames of several cameras run as one
inference.

Exporters commonly bake the batch into the graph: the input is ``[1,3,H,W]`` and a head's
Reshape has the constant shape ``[1, anchors, 4, 16]``. :func:`dynamic_batch_file` makes
the input's and outputs' first dimension symbolic (``batch``) and turns the leading 1 of
every constant Reshape target into 0, ONNX's "copy this dimension from the input"; nothing
else changes. The copy is accepted
only when ONNX Runtime, run on it with two different frames at once, gives the outputs the
original gives each frame alone; a model whose outputs do not follow the batch (a constant
head, a batch folded into another axis) is refused with the reason, and the caller serves
frames one at a time.

The copy lives in the engine cache directory, named by the variant file's SHA-256 and this
converter's version, with a sidecar holding the copy's own SHA-256: a copy that no longer
matches it is made again, never loaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from edge_trt_ros.errors import NotBatchable
from edge_trt_ros.files import save_model_atomic, sha256_file, write_json_atomic

log = logging.getLogger("edge_trt_ros.engines.dynamic_batch")

CONVERTER = "dynamic-batch-1"  # bump when the rewrite changes: old copies are made again
BATCH_DIM = "batch"
CHECK_BATCH = 2
RTOL, ATOL = 1e-3, 1e-3  # same kernels per frame; only summation order may differ


def batch_dims(model: onnx.ModelProto) -> list[int | str]:
    """The first dimension of every graph input and output (an int, or its symbol)."""
    out: list[int | str] = []
    for value in [*_graph_inputs(model), *model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        out.append((dims[0].dim_value if dims[0].HasField("dim_value") else dims[0].dim_param)
                   if dims else "")
    return out


def _graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    names = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in names]


def make_dynamic(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with a symbolic batch (in place; returns it): the input's and outputs' first
    dimension, and every constant Reshape target that starts with the batch of 1. Raises
    NotBatchable when the model's batch is not 1. Whether the result is right is for
    :func:`_check` to show: a leading 1 that was not the batch fails it."""
    inputs = _graph_inputs(model)
    if len(inputs) != 1:
        raise NotBatchable(f"{len(inputs)} graph inputs: batching needs one image input")
    for value in [*inputs, *model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if not dims or not (dims[0].dim_value == 1 or dims[0].dim_param):
            raise NotBatchable(f"{value.name!r} does not have batch 1 in its first dimension")
        dims[0].Clear()
        dims[0].dim_param = BATCH_DIM
    constants = {i.name: i for i in model.graph.initializer} | {
        n.output[0]: a.t for n in model.graph.node if n.op_type == "Constant"
        for a in n.attribute if a.name == "value"}
    for node in model.graph.node:
        if node.op_type != "Reshape" or node.input[1] not in constants \
                or any(a.name == "allowzero" and a.i for a in node.attribute):
            continue
        shape = numpy_helper.to_array(constants[node.input[1]])
        if shape.ndim != 1 or shape.size == 0 or shape[0] != 1:
            continue
        name = f"{node.input[1]}__{BATCH_DIM}"
        if name not in constants:
            batched = shape.copy()
            batched[0] = 0  # ONNX Reshape: copy this dimension from the input
            constants[name] = numpy_helper.from_array(batched, name)
            model.graph.initializer.append(constants[name])
        node.input[1] = name
    del model.graph.value_info[:]  # stale batch-1 shapes: ONNX Runtime infers them again
    return model


def _check(original: str, copy: onnx.ModelProto) -> None:
    """ONNX Runtime on ``CHECK_BATCH`` frames at once against each frame alone."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.log_severity_level = 3
    options.intra_op_num_threads = 1  # beside running workers: take one core at most
    single = ort.InferenceSession(original, options, providers=["CPUExecutionProvider"])
    batched = ort.InferenceSession(copy.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    arg = single.get_inputs()[0]
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in arg.shape]
    dtype = np.float16 if arg.type == "tensor(float16)" else np.float32
    frames = np.random.default_rng(0).random((CHECK_BATCH, *shape[1:])).astype(dtype)
    try:
        together = batched.run(None, {arg.name: frames})
        alones = [single.run(None, {arg.name: frames[i : i + 1]}) for i in range(CHECK_BATCH)]
    except Exception as exc:  # ONNX Runtime's Fail: a shape the rewrite did not follow
        raise NotBatchable(f"{CHECK_BATCH} frames at once do not run: {exc}") from exc
    for i, alone in enumerate(alones):
        for k, (a, b) in enumerate(zip(alone, together, strict=True)):
            if b.shape[0] != CHECK_BATCH or not np.allclose(
                    a.astype(np.float32), b[i : i + 1].astype(np.float32), RTOL, ATOL):
                raise NotBatchable(
                    f"output {k} of frame {i} differs when {CHECK_BATCH} frames run at once "
                    f"(shape {list(b.shape)}): the model's outputs do not follow the batch")


def dynamic_batch_file(model_path: str | os.PathLike[str],
                       cache_dir: str | os.PathLike[str] = "") -> Path:
    """A dynamic-batch copy of ``model_path`` (the file itself when it already has one),
    made once per variant file and kept in ``cache_dir`` (a temporary directory when ""). A
    cached copy is found without parsing the model: an engine switch opens it."""
    source = sha256_file(model_path)
    name = hashlib.sha256(f"{source}:{CONVERTER}".encode()).hexdigest()[:32]
    if cache_dir:
        root = Path(cache_dir)
        copy, sidecar = root / f"{name}.batch.onnx", root / f"{name}.batch.json"
        try:
            if json.loads(sidecar.read_text())["sha256"] == sha256_file(copy):
                return copy
        except (OSError, ValueError, KeyError, TypeError):
            pass  # absent or stale: make it
    model = onnx.load(str(model_path))
    first = batch_dims(model)[0]
    if isinstance(first, str) and first:  # already symbolic: the file itself batches
        return Path(model_path)
    root = Path(cache_dir) if cache_dir else Path(tempfile.mkdtemp(prefix="edge_trt_batch."))
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    copy, sidecar = root / f"{name}.batch.onnx", root / f"{name}.batch.json"
    log.info("making a dynamic-batch copy of %s (frames of several cameras in one inference)",
             model_path)
    model = make_dynamic(model)
    _check(str(model_path), model)
    save_model_atomic(model, copy)
    write_json_atomic(sidecar, {"source_sha256": source, "converter": CONVERTER,
                                "sha256": sha256_file(copy)})
    return copy
