"""Regression guard for the shipped model: what it is, and that its accuracy has not dropped.

The floors are NOT tuning targets. They sit well below what the model measured, so they
only trip when something real breaks: a wrong model file, a preprocessing/letterbox or
decode regression, a dataset change that shifts the test split, or a bad retrain.
"""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from edge_trt_ros.cli import main as cli_main
from edge_trt_ros.dataset import CLASS_NAMES, LUX_BINS
from edge_trt_ros.model_info import parse_names, read_model_info

MODEL = Path(__file__).resolve().parents[1] / "models" / "defect_yolo.onnx"
INPUT_HW = (384, 512)
STRIDES = (8, 16, 32)

# First 96 frames of the lux-stratified test split: 24 per lux bin, 193 instances; ~4 s on
# an idle 2-core x86 CPU (8-12 s while other jobs shared it). Measured with ONNX Runtime
# 1.32 (fp32, CPU), confidence 0.001, NMS IoU 0.6 (the `edge-trt evaluate` defaults):
# mAP@0.5 0.985, mAP@0.5:0.95 0.842, lowest lux-bin mAP@0.5 0.974 (bright).
# Floors = measured - 0.05, rounded down.
SUBSET_FRAMES = 96
FLOOR_MAP50 = 0.93
FLOOR_MAP50_95 = 0.79
FLOOR_MAP50_PER_LUX_BIN = 0.92


@pytest.fixture(scope="module")
def model() -> onnx.ModelProto:
    return onnx.load(str(MODEL))


def test_metadata_is_ultralytics_style_and_matches_the_dataset(model: onnx.ModelProto) -> None:
    """Names/imgsz/stride are what other tools (and read_model_info) rely on."""
    meta = {p.key: p.value for p in model.metadata_props}
    assert parse_names(meta["names"]) == list(CLASS_NAMES)
    assert meta["names"] == "{0: 'scratch', 1: 'crack', 2: 'dent', 3: 'stain'}"
    assert meta["imgsz"] == str(list(INPUT_HW))
    assert meta["stride"] == "32" and meta["task"] == "detect"


def test_layout_is_yolov8_at_384x512(model: onnx.ModelProto) -> None:
    info = read_model_info(MODEL)
    assert (info.input_hw, info.input_layout) == (INPUT_HW, "nchw")
    assert (info.output_layout, info.num_classes) == ("yolov8", 4)
    assert info.class_names == CLASS_NAMES
    anchors = sum((INPUT_HW[0] // s) * (INPUT_HW[1] // s) for s in STRIDES)
    out = model.graph.output
    assert len(out) == 1 and out[0].name == "output0"
    assert [d.dim_value for d in out[0].type.tensor_type.shape.dim] == [1, 4 + 4, anchors]
    assert anchors == 4032
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]


def test_batchnorm_is_kept_unfused(model: onnx.ModelProto) -> None:
    """Conv+BN fusion is the runtime's job (and what the fusion study measures)."""
    producers = {out: n.op_type for n in model.graph.node for out in n.output}
    bns = [n for n in model.graph.node if n.op_type == "BatchNormalization"]
    assert len(bns) > 50
    assert all(producers.get(n.input[0]) == "Conv" for n in bns)


def test_accuracy_on_test_subset_stays_above_floor(tmp_path: Path) -> None:
    """The same code path as `edge-trt evaluate MODEL --split test --count 96`."""
    out = tmp_path / "eval.json"
    assert cli_main(["evaluate", str(MODEL), "--split", "test",
                     "--count", str(SUBSET_FRAMES), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert (result["images"], result["instances"]) == (SUBSET_FRAMES, 193)
    assert result["overall"]["map50"] >= FLOOR_MAP50, result["overall"]
    assert result["overall"]["map50_95"] >= FLOOR_MAP50_95, result["overall"]
    for _, _, name in LUX_BINS:
        entry = result["per_lux_bin"][name]
        assert entry["images"] == SUBSET_FRAMES // len(LUX_BINS)
        assert entry["map50"] >= FLOOR_MAP50_PER_LUX_BIN, (name, entry)
