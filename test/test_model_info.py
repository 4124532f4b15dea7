"""Reading models: class names, input geometry and output layouts, with clear errors."""

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from onnx_models import constant_output_model, names_metadata

from edge_trt_ros.detector import Detector
from edge_trt_ros.errors import ModelLayoutError
from edge_trt_ros.model_info import _load_structure, parse_names, read_model_info
from edge_trt_ros.resources import DEFAULT_MODEL, find_resource


def test_parse_names_accepts_ultralytics_dict_and_list() -> None:
    assert parse_names("{0: 'scratch', 1: 'crack'}") == ["scratch", "crack"]
    assert parse_names("['a', 'b']") == ["a", "b"]
    assert parse_names("not python") is None


def test_yolov8_layout_with_metadata(tmp_path: Path) -> None:
    out = np.zeros((1, 6, 100), np.float32)
    path = constant_output_model(tmp_path / "m.onnx", {"output0": out}, (256, 320),
                                 names_metadata(["dent", "stain"], (256, 320)))
    info = read_model_info(path)
    assert (info.output_layout, info.num_classes) == ("yolov8", 2)
    assert info.class_names == ("dent", "stain")
    assert (info.input_hw, info.input_layout) == ((256, 320), "nchw")


def test_layouts_without_metadata(tmp_path: Path) -> None:
    v5 = constant_output_model(tmp_path / "v5.onnx", {"o": np.zeros((1, 500, 8), np.float32)})
    assert read_model_info(v5).output_layout == "yolov5"
    assert read_model_info(v5).class_names == ("class_0", "class_1", "class_2")
    nhwc = constant_output_model(tmp_path / "nhwc.onnx", {"o": np.zeros((1, 7, 90), np.float32)},
                                 nhwc=True)
    info = read_model_info(nhwc)
    assert (info.output_layout, info.num_classes, info.input_layout) == ("yolov8", 3, "nhwc")


def test_end2end_and_efficientnms_outputs(tmp_path: Path) -> None:
    e2e = constant_output_model(tmp_path / "e.onnx", {"o": np.zeros((1, 300, 6), np.float32)},
                                metadata=names_metadata(["a", "b", "c"], (320, 320)))
    assert read_model_info(e2e).output_layout == "end2end"
    eff = constant_output_model(tmp_path / "f.onnx", {
        "num_dets": np.zeros((1, 1), np.int32),
        "det_boxes": np.zeros((1, 100, 4), np.float32),
        "det_scores": np.zeros((1, 100), np.float32),
        "det_classes": np.zeros((1, 100), np.int32),
    })
    assert read_model_info(eff).output_layout == "efficientnms"


def test_wrong_layout_is_a_load_time_error_naming_the_shape(tmp_path: Path) -> None:
    bad = constant_output_model(tmp_path / "b.onnx", {"o": np.zeros((1, 9, 100), np.float32)},
                                metadata=names_metadata(["a", "b"], (320, 320)))
    with pytest.raises(ModelLayoutError, match=r"\[1, 9, 100\].*2 classes"):
        read_model_info(bad)
    two = constant_output_model(tmp_path / "t.onnx", {"a": np.zeros((1, 2), np.float32),
                                                      "b": np.zeros((1, 2), np.float32)})
    with pytest.raises(ModelLayoutError, match="unsupported outputs"):
        read_model_info(two)


def test_garbage_and_missing_models_fail_clearly(tmp_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not a model" * 10)
    with pytest.raises(ModelLayoutError, match="not a readable ONNX model"):
        read_model_info(junk)
    with pytest.raises(FileNotFoundError):
        read_model_info(tmp_path / "absent.onnx")


def test_detector_maps_a_known_box_into_camera_pixels(tmp_path: Path) -> None:
    out = np.zeros((1, 6, 50), np.float32)
    out[0, :, 0] = [160, 160, 100, 50, 0.1, 0.9]  # class 1 "b" at 0.9, in 320x320 input pixels
    path = constant_output_model(tmp_path / "k.onnx", {"output0": out}, (320, 320),
                                 names_metadata(["a", "b"], (320, 320)))
    det = Detector.from_model(path)
    found = det.detect(np.zeros((480, 640, 3), np.uint8))
    np.testing.assert_allclose(found.boxes, [[220, 190, 420, 290]], atol=1e-3)
    assert found.class_ids.tolist() == [1] and det.class_names == ["a", "b"]
    assert det.last_timing.inference_ms > 0


def test_model_facts_are_read_without_parsing_the_weights(tmp_path: Path) -> None:
    """A large variant's weights are skipped, not parsed (a switch reads its facts while
    the node's other threads need the GIL); a file the scan cannot follow is still refused."""
    model = onnx.load(str(find_resource(DEFAULT_MODEL)))
    model.graph.initializer.append(numpy_helper.from_array(np.zeros(4 << 20, np.uint8), "pad"))
    path = tmp_path / "padded.onnx"
    onnx.save(model, str(path))
    slim = _load_structure(path)
    assert [t.name for t in slim.graph.initializer] == [t.name for t in model.graph.initializer]
    assert not any(t.raw_data or t.dims for t in slim.graph.initializer)
    assert list(slim.graph.node) == list(model.graph.node)
    assert list(slim.graph.input) == list(model.graph.input)
    assert list(slim.graph.output) == list(model.graph.output)
    assert list(slim.metadata_props) == list(model.metadata_props)
    shipped = read_model_info(find_resource(DEFAULT_MODEL))
    assert read_model_info(path) == dataclasses.replace(shipped, path=str(path))
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ModelLayoutError, match="not a readable ONNX model"):
        read_model_info(cut)
