"""Fusion report: the fused-node map, activation bytes per profile, `edge-trt inspect`.

Runs the real ONNX Runtime profiler on the tiny generated detector (three Conv+BN+SiLU
blocks and a YOLOv8 tail), so the byte counts can be checked against arithmetic on the
graph's shapes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper
from onnx_models import TINY_INPUT_HW
from tensorrt_standin import World, make_cuda, make_tensorrt

from edge_trt_ros.choices import FUSION_PROFILES
from edge_trt_ros.cli import main as cli_main
from edge_trt_ros.engines.fusion import markdown_table, resolve_fusion_profile
from edge_trt_ros.engines.fusion_report import (
    ProfileReport,
    fusion_map,
    fusion_patterns,
    inspector_tensor_bytes,
    onnxruntime_report,
    tensorrt_markdown,
    tensorrt_report,
)

BLOCKS = ("/model/stem", "/model/b1", "/model/detect/cv")


@pytest.fixture(scope="module")
def reports(tiny: Path) -> dict[str, ProfileReport]:
    x = np.random.default_rng(0).random((1, 3, *TINY_INPUT_HW), dtype=np.float32)
    return {r.profile: r for r in onnxruntime_report(tiny, x, FUSION_PROFILES, runs=3, threads=1)}


def _tensor_bytes(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    sizes = {}
    for v in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        dims = [d.dim_value for d in v.type.tensor_type.shape.dim]
        sizes[v.name] = int(np.prod(dims)) * 4  # every activation here is float32
    return sizes


def test_unfused_bytes_are_every_node_input_and_output(tiny: Path, reports: dict) -> None:
    model = onnx.load(str(tiny))
    sizes = _tensor_bytes(model)
    weights = {i.name for i in model.graph.initializer}
    expected = sum(sizes[t] for n in model.graph.node for t in [*n.input, *n.output]
                   if t and t not in weights)
    none = reports["none"]
    assert none.activation_bytes == expected
    assert none.nodes_optimized == none.nodes_original == len(model.graph.node)
    assert none.fused == [] and none.inserted == []
    assert len(none.nodes) == len(model.graph.node)
    assert all(n.mean_us > 0 for n in none.nodes)


def test_conservative_folds_batchnorm_and_saves_its_traffic(tiny: Path, reports: dict) -> None:
    sizes = _tensor_bytes(onnx.load(str(tiny)))
    conservative = reports["conservative"]
    assert fusion_patterns(conservative) == {"Conv+BatchNormalization -> Conv": len(BLOCKS)}
    assert {f.originals for f in conservative.fused} == {
        (f"{b}/Conv", f"{b}/BatchNormalization") for b in BLOCKS}
    # Each folded BatchNorm no longer reads the conv output nor writes its own.
    saved = sum(2 * sizes[f"{b}/c"] for b in BLOCKS)
    assert reports["none"].activation_bytes - conservative.activation_bytes == saved


def test_balanced_also_fuses_silu_and_moves_fewer_bytes(reports: dict) -> None:
    balanced = reports["balanced"]
    silu = [f for f in balanced.fused if f.original_ops == ("Sigmoid", "Mul")]
    assert {f.originals for f in silu} == {(f"{b}/Sigmoid", f"{b}/Mul") for b in BLOCKS}
    assert balanced.activation_bytes < reports["conservative"].activation_bytes
    assert balanced.nodes_optimized < reports["conservative"].nodes_optimized


def test_max_fuses_at_least_what_balanced_does(reports: dict) -> None:
    fused_max = {f.originals for f in reports["max"].fused}
    assert {f.originals for f in reports["balanced"].fused} <= fused_max
    assert reports["max"].latency_ms_median > 0
    assert reports["max"].latency_ms_p90 >= reports["max"].latency_ms_median


def _model(nodes: list[onnx.NodeProto], inits: tuple[str, ...] = ()) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
        [helper.make_tensor(i, onnx.TensorProto.FLOAT, [1], [1.0]) for i in inits],
    )
    return helper.make_model(graph)


def test_fusion_map_rules_on_hand_written_graphs() -> None:
    original = _model([
        helper.make_node("Identity", ["w0"], ["w"], name="Identity_0"),
        helper.make_node("Conv", ["x", "w"], ["c"], name="/a/Conv"),
        helper.make_node("BatchNormalization", ["c", "w", "w", "w", "w"], ["bn"],
                         name="/a/BatchNormalization"),
        helper.make_node("Sigmoid", ["bn"], ["s"], name="/a/Sigmoid"),
        helper.make_node("Mul", ["bn", "s"], ["m"], name="/a/Mul"),
        helper.make_node("Mul", ["m", "w"], ["y"], name="/a/Mul_1"),
    ], inits=("w0",))
    optimized = _model([
        helper.make_node("ReorderInput", ["x"], ["t0"], name="ReorderInput", domain="nchwc"),
        helper.make_node("Conv", ["t0", "w"], ["t1"], name="bn_nchwc", domain="nchwc"),
        helper.make_node("QuickGelu", ["t1"], ["t2"], name="/a/Mul/QuickGeluFusion/",
                         domain="com.microsoft"),
        helper.make_node("ReorderOutput", ["t2"], ["m"], name="ReorderOutput", domain="nchwc"),
        helper.make_node("Mul", ["m", "w"], ["y"], name="/a/Mul_1"),
    ], inits=("w",))
    fmap = fusion_map(original, optimized)
    assert fmap.folded == ("Identity_0",)
    assert fmap.represented["/a/BatchNormalization"] == "bn_nchwc"  # output name + _nchwc
    assert fmap.represented["/a/Conv"] == "bn_nchwc"  # absorbed into its consumer's node
    # Named after the Mul, even though the reorder writes the Mul's output tensor; and
    # "/a/Mul" must not claim "/a/Mul_1".
    assert fmap.represented["/a/Mul"] == "/a/Mul/QuickGeluFusion/"
    assert fmap.represented["/a/Sigmoid"] == "/a/Mul/QuickGeluFusion/"
    assert fmap.represented["/a/Mul_1"] == "/a/Mul_1"
    assert fmap.inserted == ("ReorderInput", "ReorderOutput")
    assert [(f.name, f.original_ops) for f in fmap.fused] == [
        ("bn_nchwc", ("Conv", "BatchNormalization")),
        ("/a/Mul/QuickGeluFusion/", ("Sigmoid", "Mul")),
    ]


def test_inspect_cli_writes_json_and_markdown(tiny: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.json"
    assert cli_main(["inspect", str(tiny), "--profile", "none", "--profile", "conservative",
                     "--runs", "2", "--threads", "1", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert [p["profile"] for p in doc["profiles"]] == ["none", "conservative"]
    assert doc["profiles"][1]["activation_bytes"] < doc["profiles"][0]["activation_bytes"]
    assert all(p["nodes"] and "mean_us" in p["nodes"][0] for p in doc["profiles"])
    md = out.with_suffix(".md").read_text()
    assert "| conservative | ORT_ENABLE_BASIC |" in md
    assert "Conv+BatchNormalization -> Conv x3" in md
    assert "wrote" in capsys.readouterr().out


def test_auto_resolves_to_the_fastest_measured_else_the_hardware_default() -> None:
    assert resolve_fusion_profile("conservative", "max") == ("conservative", "requested")
    profile, why = resolve_fusion_profile("auto", "max",
                                          {"max": 21.0, "balanced": 19.5, "none": 30.0})
    assert profile == "balanced" and "fastest measured" in why
    profile, why = resolve_fusion_profile("auto", "balanced", {})
    assert profile == "balanced" and "hardware profile" in why
    assert resolve_fusion_profile("auto", "max", {"bogus": 1.0})[0] == "max"
    with pytest.raises(ValueError, match="use one of"):
        resolve_fusion_profile("fastest", "max")


# --- TensorRT (engine inspector JSON and the recording stand-in of `tensorrt`) ------------

@pytest.mark.parametrize(("entry", "expected"), [
    ({"Dimensions": [1, 3, 384, 512], "Format/Datatype": "Row major linear FP32 format"},
     3 * 384 * 512 * 4),
    ({"Dimensions": [1, 16, 192, 256], "Format/Datatype": "Row major linear FP16 format"},
     16 * 192 * 256 * 2),
    # 32-wide vectorized Int8: 48 channels occupy 64.
    ({"Dimensions": [16, 48, 28, 28],
      "Format/Datatype": "Thirty-two wide channel vectorized row major Int8 format."},
     16 * 64 * 28 * 28),
    ({"Dimensions": [1, 8], "Format/Datatype": "Half"}, 16),
    # HWC8: channels padded to a multiple of 8.
    ({"Dimensions": [1, 3, 4, 4],
      "Format/Datatype": "Channel major FP16 format where channel % 8 == 0"}, 8 * 4 * 4 * 2),
    ({"Dimensions": [-1, 128, 14, 14], "Format/Datatype": "N/A due to dynamic shapes"}, None),
    ({"Format/Datatype": "Float"}, None),
    ({"Dimensions": [1, 4], "Format/Datatype": "Some future type"}, None),
])
def test_inspector_tensor_bytes(entry: dict, expected: int | None) -> None:
    assert inspector_tensor_bytes(entry) == expected


def test_tensorrt_report_per_profile_with_the_standin(tiny: Path, tmp_path: Path) -> None:
    world = World()
    trt, cuda = make_tensorrt(world), make_cuda(world)
    x = np.zeros((1, 3, *TINY_INPUT_HW), np.float32)
    reports = {r.profile: r for r in tensorrt_report(
        tiny, x, ("max", "none"), precision="fp32", cache_dir=tmp_path, runs=2,
        trt_module=trt, cuda=cuda)}
    fused, unfused = reports["max"], reports["none"]
    assert (fused.builder_optimization_level, unfused.builder_optimization_level) == (5, 0)
    assert not fused.marks_boundaries and unfused.marks_boundaries
    # Marking BatchNorm/activation outputs splits the stand-in's fused layers at each one.
    assert unfused.layers > fused.layers and fused.fused_layers >= 1
    assert unfused.activation_bytes > fused.activation_bytes > 0
    assert fused.unsized_tensors == 0
    assert fused.layer_ms_total == pytest.approx(0.5 * fused.layers)
    stem = fused.engine_layers[0]
    assert stem["onnx_nodes"][:2] == ["/model/stem/Conv", "/model/stem/BatchNormalization"]
    md = tensorrt_markdown("tiny.onnx", list(reports.values()))
    assert "| max | 5 | no |" in md and "| none | 0 | yes |" in md
    assert len(world.named("PinnedBuffer.close")) >= 2  # every engine released


def test_docs_carry_the_fusion_table_verbatim() -> None:
    docs = (Path(__file__).resolve().parents[1] / "docs" / "engines.md").read_text()
    assert markdown_table() in docs
