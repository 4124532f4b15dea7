"""Frames of several cameras in one inference, without ROS: the dynamic-batch copy of the
shipped variants (real ONNX Runtime), the detector's batch against one frame at a time, the
mailbox's batch take, and a model that cannot batch refused with its reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx_models import constant_output_model, names_metadata, yolov8_output

from edge_trt_ros.dataset.render import render_sample
from edge_trt_ros.detector import Detector
from edge_trt_ros.engines.dynamic_batch import batch_dims, dynamic_batch_file
from edge_trt_ros.engines.spec import EngineSpec
from edge_trt_ros.errors import EngineError, NotBatchable
from edge_trt_ros.resources import DEFAULT_MODEL, find_resource
from edge_trt_ros.runtime.mailbox import Frame, Mailbox
from edge_trt_ros.vision.decode import DecodeParams
from edge_trt_ros.vision.image import image_view

MODEL = find_resource(DEFAULT_MODEL)
VARIANTS = MODEL.parent / "variants"
DECODE = DecodeParams(0.25, 0.45, 100)


def _frames() -> list[np.ndarray]:
    """Three different scenes and sizes (a letterbox per slot), bgr8 as cameras send them."""
    sizes = ((640, 480), (800, 600), (640, 480))
    return [np.ascontiguousarray(render_sample(seed, width=w, height=h, lux=lux).image[:, :, ::-1])
            for seed, (w, h), lux in zip((11, 12, 13), sizes, (40_000, 800, 30), strict=True)]


def _views(frames: list[np.ndarray]) -> list:  # type: ignore[type-arg]
    return [image_view(f.tobytes(), "bgr8", f.shape[0], f.shape[1], f.shape[1] * 3)
            for f in frames]


@pytest.mark.parametrize("name", ["fp32", "int8-ort", "int8-trt", "fp16"])
def test_a_batch_gives_every_frame_the_detections_it_gets_alone(name: str,
                                                                tmp_path: Path) -> None:
    path = MODEL if name == "fp32" else VARIANTS / f"defect_yolo.{name}.onnx"
    single = Detector.from_spec(EngineSpec("onnxruntime", str(path), intra_op_threads=1), DECODE)
    batched = Detector.from_spec(EngineSpec("onnxruntime", str(path), intra_op_threads=1,
                                            cache_dir=str(tmp_path), max_batch=3), DECODE)
    try:
        assert batched.engine.max_batch == 3 and single.engine.max_batch == 1
        views = _views(_frames())
        alone = [single.detect(v) for v in views]
        together = batched.detect_batch(views)
        assert sum(len(d.boxes) for d in alone) >= 3  # the scenes have defects to find
        for a, b in zip(alone, together, strict=True):
            assert len(a.boxes) == len(b.boxes)
            np.testing.assert_array_equal(a.class_ids, b.class_ids)
            np.testing.assert_allclose(a.boxes, b.boxes, atol=0.05)  # pixels
            np.testing.assert_allclose(a.scores, b.scores, atol=1e-3)
        again = batched.detect_batch(views[:2])  # a smaller batch on the same buffers
        np.testing.assert_allclose(again[1].boxes, together[1].boxes, atol=1e-4)
        with pytest.raises(EngineError, match="1..3"):
            batched.detect_batch(views * 2)
    finally:
        single.release()
        batched.release()


def test_the_copy_is_made_once_and_remade_when_it_no_longer_matches(tmp_path: Path) -> None:
    first = dynamic_batch_file(MODEL, tmp_path)
    assert batch_dims(onnx.load(str(first)))[0] == "batch"
    assert batch_dims(onnx.load(str(MODEL)))[0] == 1  # the shipped file is left alone
    stamp = first.stat().st_mtime_ns
    assert dynamic_batch_file(MODEL, tmp_path) == first and first.stat().st_mtime_ns == stamp
    first.write_bytes(first.read_bytes()[:-10])  # damaged: never loaded, made again
    assert dynamic_batch_file(MODEL, tmp_path) == first
    assert onnx.load(str(first)).graph.node  # whole again
    assert dynamic_batch_file(first) == first  # already dynamic: used as it is


def test_a_model_whose_outputs_ignore_the_batch_is_refused(tmp_path: Path) -> None:
    known = constant_output_model(tmp_path / "known.onnx",
                                  {"output0": yolov8_output([(9.0, 9.0, 4.0, 4.0)],
                                                            [[0.9, 0.0]])},
                                  (64, 64), names_metadata(["a", "b"], (64, 64)))
    with pytest.raises(NotBatchable, match="do not follow the batch|do not run"):
        dynamic_batch_file(known, tmp_path)
    assert not list(tmp_path.glob("*.batch.onnx"))  # nothing half-made is left to load


def test_onnx_runtime_on_a_gpu_does_not_batch() -> None:
    from edge_trt_ros.engines.registry import open_engine

    with pytest.raises(EngineError):  # no GPU here: refused; with one: NotBatchable
        open_engine(EngineSpec("onnxruntime", str(MODEL), device="cuda:0", max_batch=2))
    with pytest.raises(EngineError, match="max_batch 0"):
        EngineSpec("onnxruntime", str(MODEL), max_batch=0)


def test_a_batch_take_holds_one_frame_per_waiting_camera_and_never_waits_for_more() -> None:
    box = Mailbox()
    for i, cam in enumerate("abcab"):
        box.put(Frame(i, i, cam))
    first = box.take_batch(2, 0)
    assert [f.source for f in first] == ["a", "b"] and [f.payload for f in first] == [3, 4]
    assert [f.source for f in box.take_batch(4, 0)] == ["c"]  # only what waits
    assert box.take_batch(3, 0.01) == []
    box.put(Frame(9, 9, "a"))
    assert [f.payload for f in box.take_batch(1, 0)] == [9]


def test_with_several_workers_a_batch_takes_only_its_share_of_what_waits() -> None:
    """Two workers, four cameras waiting: the first takes half (a batch runs on one worker;
    the frames the other can run beside it are left to it); two waiting: one, no batch."""
    box = Mailbox()
    for i, cam in enumerate("abcd"):
        box.put(Frame(i, i, cam))
    assert [f.source for f in box.take_batch(4, 0, share=2)] == ["a", "b"]
    assert [f.source for f in box.take_batch(4, 0, share=2)] == ["c"]
    assert [f.source for f in box.take_batch(4, 0, share=2)] == ["d"]
    for i, cam in enumerate("ab"):
        box.put(Frame(i, i, cam))
    assert len(box.take_batch(4, 0, share=2)) == 1
    assert len(box.take_batch(4, 0, share=2)) == 1
