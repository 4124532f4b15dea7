"""Every supported output layout end to end through Detector.from_model, and clear refusals.

test_nms_decode.py checks the decoders on arrays and test_model_info.py the layout
detection; this file runs real ONNX files of each layout through the whole pipeline
(ONNX Runtime, letterbox, decode, mapping back to camera pixels), which is the path a
user's own YOLOv5/v7/v8/v10/v11 export takes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx_models import constant_output_model, names_metadata

from edge_trt_ros.detector import Detector
from edge_trt_ros.errors import ModelLayoutError
from edge_trt_ros.model_info import read_model_info

INPUT_HW = (320, 320)
CAMERA = np.zeros((480, 640, 3), np.uint8)  # letterboxed at scale 0.5, 40 px pad top/bottom
NAMES = ["scratch", "crack", "dent"]
# One defect in network-input pixels, and where it is in the camera frame.
INPUT_XYXY = (60.0, 100.0, 160.0, 140.0)
CAMERA_XYXY = [120.0, 120.0, 320.0, 200.0]


def _yolov5() -> dict[str, np.ndarray]:
    """[1, N, 5+nc]: score = objectness x class probability."""
    out = np.zeros((1, 64, 5 + len(NAMES)), np.float32)
    out[0, 0] = [110, 120, 100, 40, 0.9, 0.05, 0.1, 0.8]  # 0.9 x 0.8 = 0.72, class 2
    out[0, 1] = [112, 121, 100, 40, 0.8, 0.05, 0.1, 0.7]  # duplicate: NMS removes it
    out[0, 2] = [250, 250, 20, 20, 0.2, 0.99, 0.0, 0.0]  # class 0.99 but 0.2 x 0.99 < 0.25
    return {"output0": out}


def _end2end() -> dict[str, np.ndarray]:
    """[1, K, 6]: x1, y1, x2, y2, score, class with NMS already applied."""
    out = np.zeros((1, 300, 6), np.float32)
    out[0, 0] = [*INPUT_XYXY, 0.72, 2]
    out[0, 1] = [200, 200, 240, 260, 0.1, 0]  # below the confidence threshold
    return {"output0": out}


def _efficientnms() -> dict[str, np.ndarray]:
    """num_dets [1,1], boxes [1,K,4], scores [1,K], classes [1,K] (TensorRT plugin style)."""
    boxes = np.zeros((1, 100, 4), np.float32)
    scores = np.zeros((1, 100), np.float32)
    classes = np.zeros((1, 100), np.int32)
    boxes[0, 0], scores[0, 0], classes[0, 0] = INPUT_XYXY, 0.72, 2
    boxes[0, 1], scores[0, 1], classes[0, 1] = (200, 200, 240, 260), 0.1, 0  # too low
    boxes[0, 2], scores[0, 2], classes[0, 2] = (0, 0, 50, 50), 0.99, 1  # beyond num_dets
    return {"num_dets": np.array([[2]], np.int32), "det_boxes": boxes,
            "det_scores": scores, "det_classes": classes}


@pytest.mark.parametrize("nhwc", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize(("layout", "outputs"), [
    ("yolov5", _yolov5()), ("end2end", _end2end()), ("efficientnms", _efficientnms()),
])
def test_layout_end_to_end(
    tmp_path: Path, layout: str, outputs: dict[str, np.ndarray], nhwc: bool
) -> None:
    path = constant_output_model(tmp_path / f"{layout}.onnx", outputs, INPUT_HW,
                                 names_metadata(NAMES, INPUT_HW), nhwc=nhwc)
    det = Detector.from_model(path)
    assert det.info.output_layout == layout
    assert det.info.input_layout == ("nhwc" if nhwc else "nchw")
    assert det.class_names == NAMES
    found = det.detect(CAMERA)
    np.testing.assert_allclose(found.boxes, [CAMERA_XYXY], atol=1e-3)
    np.testing.assert_allclose(found.scores, [0.72], rtol=1e-6)
    assert found.class_ids.tolist() == [2]
    assert det.class_names[int(found.class_ids[0])] == "dent"


def test_threshold_changes_reach_the_decoder(tmp_path: Path) -> None:
    """A runtime threshold change reaches the decoder (the ROS node exposes it live)."""
    path = constant_output_model(tmp_path / "e.onnx", _end2end(), INPUT_HW,
                                 names_metadata(NAMES, INPUT_HW))
    det = Detector.from_model(path, confidence_threshold=0.05)
    assert len(det.detect(CAMERA)) == 2
    det.update(confidence_threshold=0.8)
    assert len(det.detect(CAMERA)) == 0


def test_list_style_names_metadata(tmp_path: Path) -> None:
    """Some exporters write names as a list instead of Ultralytics' {id: name} dict."""
    meta = {**names_metadata(NAMES, INPUT_HW), "names": str(NAMES)}
    path = constant_output_model(tmp_path / "l.onnx", _yolov5(), INPUT_HW, meta)
    det = Detector.from_model(path)
    assert det.class_names == NAMES and det.info.output_layout == "yolov5"


def test_end2end_flag_resolves_the_one_class_ambiguity(tmp_path: Path) -> None:
    """[1, K, 6] is both one-class YOLOv5 and NMS-inside; only the metadata can tell."""
    out = {"output0": np.zeros((1, 300, 6), np.float32)}
    meta = names_metadata(["defect"], INPUT_HW)
    plain = constant_output_model(tmp_path / "p.onnx", out, INPUT_HW, meta)
    flagged = constant_output_model(tmp_path / "f.onnx", out, INPUT_HW, {**meta, "end2end": "True"})
    assert read_model_info(plain).output_layout == "yolov5"
    assert read_model_info(flagged).output_layout == "end2end"


def test_ambiguous_output_asks_for_class_names_and_the_advice_works(tmp_path: Path) -> None:
    """[1, 7, 7] is YOLOv8 with 3 classes or YOLOv5 with 2: the error must say what helps."""
    path = constant_output_model(tmp_path / "sq.onnx",
                                 {"output0": np.zeros((1, 7, 7), np.float32)}, INPUT_HW)
    with pytest.raises(ModelLayoutError, match=r"\[1, 7, 7\] without class names"):
        Detector.from_model(path)
    det = Detector.from_model(path, class_names=["a", "b", "c"])
    assert (det.info.output_layout, det.class_names) == ("yolov8", ["a", "b", "c"])
    det = Detector.from_model(path, class_names=["a", "b"])
    assert (det.info.output_layout, det.class_names) == ("yolov5", ["a", "b"])
    det = Detector.from_model(path, class_names=["a", "b"], output_layout="yolov8")
    assert det.info.output_layout == "yolov8"


def test_class_names_override_the_metadata(tmp_path: Path) -> None:
    path = constant_output_model(tmp_path / "o.onnx", _end2end(), INPUT_HW,
                                 names_metadata(NAMES, INPUT_HW))
    assert Detector.from_model(path, class_names=["x", "y", "z"]).class_names == ["x", "y", "z"]


@pytest.mark.parametrize(("outputs", "message"), [
    ({"o": np.zeros((1, 100), np.float32)}, r"unsupported outputs \[\[1, 100\]\]"),
    ({"o": np.zeros((1, 4, 8400), np.float32)}, r"\[1, 4, 8400\] does not fit 3 classes"),
    ({"o": np.zeros((1, 25200, 85), np.float32)}, r"\[1, 25200, 85\] does not fit 3 classes"),
])
def test_wrong_layout_names_what_was_found(
    tmp_path: Path, outputs: dict[str, np.ndarray], message: str
) -> None:
    """A COCO-80 model with 3-class metadata, or a headless one, fails at load, not later."""
    path = constant_output_model(tmp_path / "w.onnx", outputs, INPUT_HW,
                                 names_metadata(NAMES, INPUT_HW))
    with pytest.raises(ModelLayoutError, match=message):
        Detector.from_model(path)


def test_unknown_layout_override_and_non_image_input(tmp_path: Path) -> None:
    path = constant_output_model(tmp_path / "m.onnx", _end2end(), INPUT_HW,
                                 names_metadata(NAMES, INPUT_HW))
    with pytest.raises(ModelLayoutError, match="unknown output_layout 'yolox'"):
        Detector.from_model(path, output_layout="yolox")
    model = onnx.load(str(path))
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 1  # grey [1, 1, 320, 320]
    onnx.save(model, str(tmp_path / "grey.onnx"))
    with pytest.raises(ModelLayoutError, match=r"\[1, 1, 320, 320\] has no 3-channel axis"):
        Detector.from_model(tmp_path / "grey.onnx")
