"""Fuzzing model files: truncated and bit-flipped exports, random bytes, and structurally
odd graphs (wrong opset or IR version, any input rank and batch, zero to five outputs of any
shape, a forced layout). The property: reading the model gives a ModelInfo or a
ModelLayoutError naming what was found; opening it gives a Detector or an EdgeTrtError; a
Detector that opens runs a frame or fails with EngineError (which the workers count as a
failed frame). Never another exception, never a hang."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from fuzz_support import FUZZ, FUZZ_SLOW, count, write_report
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from edge_trt_ros.detector import Detector
from edge_trt_ros.errors import EdgeTrtError, EngineError, ModelLayoutError
from edge_trt_ros.model_info import read_model_info
from edge_trt_ros.vision.decode import LAYOUTS

FRAME = np.zeros((48, 64, 3), np.uint8)


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    write_report()


@pytest.fixture(scope="module")
def tiny_bytes(tiny: Path) -> bytes:
    return tiny.read_bytes()


def _write(data: bytes) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="fuzz_model.") as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(data)
        yield path


def _read_or_refuse(path: Path, layout: str = "auto") -> object:
    try:
        return read_model_info(path, output_layout=layout)
    except ModelLayoutError as exc:
        assert str(exc)
        return None


@st.composite
def damaged(draw: st.DrawFn, original: bytes) -> bytes:
    kind = draw(st.sampled_from(["truncate", "flip", "random", "splice"]))
    if kind == "truncate":
        return original[:draw(st.integers(0, len(original) - 1))]
    if kind == "random":
        return draw(st.binary(max_size=4096))
    if kind == "splice":
        at = draw(st.integers(0, len(original)))
        return original[:at] + draw(st.binary(min_size=1, max_size=64)) + original[at:]
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 8))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] ^= 1 << draw(st.integers(0, 7))
    return bytes(data)


@FUZZ
@given(data=st.data())
def test_damaged_model_files_are_refused_clearly(tiny_bytes: bytes, data: st.DataObject) -> None:
    count("model files: damaged")
    blob = data.draw(damaged(tiny_bytes))
    for path in _write(blob):
        _read_or_refuse(path)


def _open_and_run(blob: bytes) -> None:
    """A model that loads runs a frame or fails as an EngineError; one that does not load
    is refused as an EdgeTrtError. Anything else (a raw numpy/ORT error) fails the test."""
    for path in _write(blob):
        try:
            detector = Detector.from_model(path)
        except EdgeTrtError:
            return
        try:
            detector.detect(FRAME)
        except EngineError:
            pass
        finally:
            detector.release()


@FUZZ_SLOW
@given(data=st.data())
def test_damaged_model_files_never_crash_the_engine(tiny_bytes: bytes,
                                                    data: st.DataObject) -> None:
    count("model files: damaged, opened")
    blob = data.draw(damaged(tiny_bytes))
    _open_and_run(blob)


dims = st.one_of(st.integers(0, 12), st.sampled_from(["batch", "h", "?"]))


@st.composite
def odd_models(draw: st.DrawFn, lying: bool = False) -> bytes:
    """A graph of Constant outputs with any shapes beside an image input of any shape; the
    declared output shapes are the real ones or symbolic (``lying``: any declared shape)."""
    in_dims = draw(st.one_of(st.lists(dims, min_size=1, max_size=5),
                             st.just([1, 3, 32, 32]), st.just(["batch", 32, 32, 3])))
    outputs, nodes = [], []
    plausible = st.one_of(  # [1, 4+nc, N] (YOLOv8), [1, N, 5+nc] (YOLOv5), [1, K, 6]
        st.tuples(st.integers(1, 8), st.integers(13, 40)).map(lambda t: [1, 4 + t[0], t[1]]),
        st.tuples(st.integers(1, 8), st.integers(14, 40)).map(lambda t: [1, t[1], 5 + t[0]]),
        st.integers(1, 30).map(lambda k: [1, k, 6]))
    for i in range(draw(st.one_of(st.just(1), st.integers(0, 5)))):
        shape = draw(st.one_of(plausible, st.lists(st.integers(1, 12), min_size=1,
                                                   max_size=5)))
        value = np.zeros(shape, np.float32)
        nodes.append(helper.make_node("Constant", [], [f"out{i}"],
                                      value=numpy_helper.from_array(value)))
        declared = (shape if not lying and draw(st.booleans()) else
                    [draw(st.one_of(st.just(d), dims if lying else st.just("n"))) for d in shape])
        outputs.append(helper.make_tensor_value_info(f"out{i}", TensorProto.FLOAT, declared))
    graph = helper.make_graph(nodes, "odd", [helper.make_tensor_value_info(
        "images", TensorProto.FLOAT, in_dims)], outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(
        "", draw(st.integers(1, 30)))])
    model.ir_version = draw(st.integers(1, 12))
    if draw(st.integers(0, 3)) == 0:
        names = draw(st.lists(st.text(max_size=8), max_size=5))
        model.metadata_props.append(onnx.StringStringEntryProto(key="names", value=str(names)))
    if draw(st.booleans()):
        model.metadata_props.append(onnx.StringStringEntryProto(
            key="imgsz", value=draw(st.sampled_from(["[32, 32]", "64", "[0, 0]", "x", "[]"]))))
    return model.SerializeToString()


@FUZZ
@given(blob=odd_models(), layout=st.sampled_from(["auto", *LAYOUTS, "yolox"]))
def test_odd_graphs_are_read_or_refused_by_name(blob: bytes, layout: str) -> None:
    count("model files: odd graphs")
    for path in _write(blob):
        info = _read_or_refuse(path, layout)
        if info is not None:
            assert layout in ("auto", *LAYOUTS)


@FUZZ_SLOW
@given(blob=odd_models())
def test_odd_graphs_that_load_run_or_fail_as_engine_errors(blob: bytes) -> None:
    count("model files: odd graphs, opened")
    _open_and_run(blob)


def test_outputs_contradicting_their_declared_shapes_fail_as_engine_errors(
        tmp_path: Path) -> None:
    count("model files: lying shapes, opened")
    node = helper.make_node("Constant", [], ["out0"],
                            value=numpy_helper.from_array(np.zeros((1, 1, 1), np.float32)))
    graph = helper.make_graph([node], "lying", [helper.make_tensor_value_info(
        "images", TensorProto.FLOAT, [1, 3, 32, 32])], [helper.make_tensor_value_info(
            "out0", TensorProto.FLOAT, [1, 1, 10])])  # declares YOLOv5 with 5 classes
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.metadata_props.append(onnx.StringStringEntryProto(key="names", value=str(list("abcde"))))
    path = tmp_path / "lying.onnx"
    onnx.save(model, str(path))
    detector = Detector.from_model(path)
    try:
        with pytest.raises(EngineError, match=r"outputs of shape \[\(1, 1, 1\)\]"):
            detector.detect(FRAME)
    finally:
        detector.release()
