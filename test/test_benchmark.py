"""``edge-trt benchmark``: the runner, the result format, the frontier, reports and plots.

The runs use real ONNX Runtime sessions on the tiny generated detector and its real
variant files (fp16, both int8 recipes, built here in about a second), a few frames per
window: the figures are meaningless, the structure and the arithmetic are what is checked.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from edge_trt_ros.choices import FUSION_PROFILES
from edge_trt_ros.cli import benchmark as cli
from edge_trt_ros.reports.compare import compare
from edge_trt_ros.reports.figures import latency_summary, pareto_frontier
from edge_trt_ros.reports.gpu_import import import_gpu_ort
from edge_trt_ros.reports.schema import SCHEMA, load_result, validate
from edge_trt_ros.variants.augment import AugmentSpec
from edge_trt_ros.variants.build import build_variants
from edge_trt_ros.variants.calibration import CalibrationSpec
from edge_trt_ros.variants.headroom import HeadroomSpec

ROOT = Path(__file__).resolve().parents[1]
GPU_ORT = ROOT / "docs" / "results" / "gpu_ort.json"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="edge-trt")
    sub = parser.add_subparsers(dest="command", required=True)
    cli.register(sub)
    args = parser.parse_args(["benchmark", *argv])
    return int(args.func(args))


@pytest.fixture(scope="module")
def tiny_variants(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny_variants")
    build_variants(tiny, out, calibration=CalibrationSpec(count=8, augment=AugmentSpec(seed=1)),
                   fp16_headroom=HeadroomSpec(calibration_frames=4, stress_per_kind=1))
    return out


@pytest.fixture(scope="module")
def measured(tiny: Path, tiny_variants: Path, tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("bench")
    code = run_cli(str(tiny), "--variants-dir", str(tiny_variants), "--backend",
                   "onnxruntime", "--device", "cpu", "--profiles", "max,none", "--frames", "5",
                   "--repeats", "2", "--warmup-frames", "1", "--idle-s", "0.2", "--evaluate",
                   "8", "--threads", "1", "--engine-cache-dir", str(out / "cache"),
                   "--out", str(out))
    assert code == 0
    return json.loads((out / "benchmark.json").read_text()), out


def test_frontier_is_exactly_the_undominated_points() -> None:
    points = {"a": (10.0, 0.90), "b": (20.0, 0.95), "c": (15.0, 0.89), "d": (20.0, 0.94),
              "e": (30.0, 0.95), "f": (5.0, None), "g": (10.0, 0.90)}
    # c: a is cheaper and better; d: b is as cheap and better; e: b is cheaper, as good;
    # f has no accuracy; a and g tie, neither beats the other.
    assert pareto_frontier(points) == ["a", "g", "b"]


def test_latency_summary_percentiles() -> None:
    s = latency_summary([float(i) for i in range(1, 101)])
    assert (s["min"], s["max"], s["mean"]) == (1.0, 100.0, 50.5)
    assert s["p50"] == pytest.approx(50.5) and s["p99"] == pytest.approx(99.01)
    assert latency_summary([])["p50"] is None


def test_every_variant_and_profile_the_backend_runs_is_measured(
        measured: tuple[dict[str, Any], Path]) -> None:
    result, _ = measured
    assert validate(result) == []
    assert result["schema"] == SCHEMA and result["kind"] == "engine"
    labels = {e["label"] for e in result["entries"]}
    assert labels == {f"{v}/{p}" for v in ("fp32", "fp16", "int8-trt", "int8-ort")
                      for p in ("max", "none")}
    served = {e["variant"] for e in result["entries"] if e["served"]}
    assert served == {"fp32", "fp16", "int8-ort"}  # the node runs u8s8 int8 on the CPU
    for e in result["entries"]:
        assert e["frames"] == 10 and len(e["fps_spread"]["values"]) == 2
        lat = e["latency_ms"]
        assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert sum(e["latency_histogram"]["counts"]) == 10
        assert e["settings"]["graph_optimization"] == ("all" if e["fusion_profile"] == "max"
                                                       else "none")


def test_energy_figures_follow_the_formulas(measured: tuple[dict[str, Any], Path]) -> None:
    result, _ = measured
    idle = result["power"]["idle"]["watts"]
    macs = result["config"]["macs_per_frame"]
    assert idle is not None and result["power"]["idle_after"]["watts"] is not None
    for e in result["entries"]:
        energy, frames = e["power"]["energy_j"], e["frames"]
        eff = e["efficiency"]
        assert energy > 0
        assert eff["mj_per_frame"] == pytest.approx(1000 * energy / frames, rel=1e-3)
        assert eff["fps_per_watt"] == pytest.approx(frames / energy, rel=1e-3)
        assert eff["tops_per_watt"] == pytest.approx(2 * macs * frames / energy / 1e12,
                                                     rel=1e-2, abs=1e-5)
        assert e["power"]["estimated"] == result["power"]["estimated"]
        if eff["mj_per_frame_above_idle"] is not None:
            assert eff["mj_per_frame_above_idle"] < eff["mj_per_frame"]


def test_accuracy_measured_per_entry_and_frontier_marked(
        measured: tuple[dict[str, Any], Path]) -> None:
    result, _ = measured
    for e in result["entries"]:
        acc = e["accuracy"]
        assert acc["source"] == "measured" and acc["frames"] == 8
        assert set(acc["per_lux_bin_map50"]) == {"dark", "dim", "bright", "sunlit"}
        if e["precision"] == "fp32":
            assert acc["worst_drop"] == 0.0 and acc["within_guard"] is True
    points = {e["label"]: (e["efficiency"]["mj_per_frame"], e["accuracy"]["map50"])
              for e in result["entries"]}
    assert result["frontier"] == pareto_frontier(points) != []
    assert {e["label"] for e in result["entries"] if e["frontier"]} == set(result["frontier"])


def test_outputs_are_written_and_say_how_power_was_measured(
        measured: tuple[dict[str, Any], Path]) -> None:
    result, out = measured
    for name in ("frontier.png", "throughput_power.png", "latency.png"):
        data = (out / name).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 10_000
    md = (out / "benchmark.md").read_text()
    assert "![Efficiency-accuracy frontier](frontier.png)" in md
    for e in result["entries"]:
        assert f"`{e['label']}`" in md
    assert ("**Power: ESTIMATED**" in md) == result["power"]["estimated"]


def test_report_redraws_the_same_markdown_from_the_json(
        measured: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    _, out = measured
    assert run_cli("--report", str(out / "benchmark.json"), "--out", str(tmp_path)) == 0
    assert (tmp_path / "benchmark.md").read_text() == (out / "benchmark.md").read_text()
    assert (tmp_path / "frontier.png").read_bytes()[:8] == PNG_MAGIC


def test_compare_gives_b_over_a_and_unmatched_rows(
        measured: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    a, out = measured
    b = copy.deepcopy(a)
    b["entries"] = [e for e in b["entries"] if e["label"] != "fp16/none"]
    b["entries"][0]["fps"] = a["entries"][0]["fps"] * 2
    b["entries"][0]["efficiency"]["mj_per_frame"] = a["entries"][0]["efficiency"][
        "mj_per_frame"] / 4
    rows = {r["label"]: r for r in compare(a, b)["rows"]}
    first = a["entries"][0]["label"]
    assert rows[first]["fps"]["ratio"] == pytest.approx(2.0)
    assert rows[first]["mj_per_frame"]["ratio"] == pytest.approx(0.25)
    assert rows["fp16/none"]["in"] == "A only" and rows["fp16/none"]["fps"]["ratio"] is None
    (tmp_path / "b.json").write_text(json.dumps(b))
    assert run_cli("--compare", str(out / "benchmark.json"), str(tmp_path / "b.json"),
                   "--out", str(tmp_path / "cmp")) == 0
    text = (tmp_path / "cmp" / "benchmark.compare.md").read_text()
    assert f"| `{first}` | both |" in text and "| `fp16/none` | A only |" in text


def test_without_accuracy_there_is_no_frontier_but_the_plots_still_say_why(
        tiny: Path, tmp_path: Path) -> None:
    # no manifest beside the model: the catalog serves the base model as fp32 only
    assert run_cli(str(tiny), "--variants-dir", str(tmp_path / "none"), "--backend",
                   "onnxruntime", "--device", "cpu", "--profiles", "max", "--frames", "3",
                   "--repeats", "1", "--warmup-frames", "0", "--idle-s", "0",
                   "--engine-cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path)) == 0
    result = load_result(tmp_path / "benchmark.json")
    assert [e["label"] for e in result["entries"]] == ["fp32/max"]
    assert result["entries"][0]["accuracy"] is None and result["frontier"] == []
    assert result["power"]["idle"] is None
    assert any("No accuracy figures" in n for n in result["notes"])
    assert (tmp_path / "frontier.png").read_bytes()[:8] == PNG_MAGIC


def test_nothing_to_run_is_a_clear_error(tiny: Path, tiny_variants: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(str(tiny), "--variants-dir", str(tiny_variants), "--variants", "int9",
                   "--backend", "onnxruntime", "--out", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "nothing to benchmark" in err and "no variant 'int9'" in err
    assert not (tmp_path / "benchmark.json").exists()


def test_gpu_ort_results_import_with_their_nvml_figures(tmp_path: Path) -> None:
    raw = json.loads(GPU_ORT.read_text())["results"]
    result = import_gpu_ort(GPU_ORT, ROOT / "models" / "defect_yolo.onnx")
    assert validate(result) == []
    assert result["power"]["sensor"] == "nvml" and not result["power"]["estimated"]
    assert "bench/gpu_ort.py" in result["source"]["note"]
    rows = {e["label"]: e for e in result["entries"]}
    measured = {k for k in raw if k.count("/") == 1 and "error" not in raw[k]
                and k.split("/")[1] in FUSION_PROFILES}
    assert measured and set(rows) == measured  # every timed (variant, profile), nothing else
    accuracy = raw.get("accuracy", {})
    for label, e in rows.items():
        assert e["fps"] == raw[label]["fps"]
        assert e["efficiency"]["mj_per_frame"] == pytest.approx(raw[label]["mj_per_frame"],
                                                                abs=0.01)
        assert e["efficiency"]["mj_per_frame_above_idle"] == pytest.approx(
            raw[label]["mj_per_frame_above_idle"], abs=0.01)
        scored = accuracy.get(label.split("/")[0], {})
        if not scored or "error" in scored:  # not measured on the GPU: none claimed
            assert e["accuracy"] is None
        else:
            assert e["accuracy"]["source"] == "imported"
            assert e["accuracy"]["map50"] == scored["map50"]
    if all(e["accuracy"] is None for e in rows.values()):
        assert result["frontier"] == []  # no accuracy, no efficiency-accuracy frontier


def test_a_file_of_another_format_is_refused_with_what_to_do(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("--report", str(GPU_ORT), "--out", str(tmp_path)) == 2
    assert "--import-gpu-ort" in capsys.readouterr().err
    with pytest.raises(ValueError, match="missing 'kind'.*\\(\\+2 more\\)"):
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({"schema": SCHEMA}))
        load_result(bad)
