"""``edge-trt benchmark --node``: the energy window arithmetic, the power trace, and (opt-in,
about 3 minutes) the whole run through the detector node; plus the environment record's
clock readers on a fake sysfs tree."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest

from edge_trt_ros.power.reading import PowerReading
from edge_trt_ros.reports.environment import clocks_record, cpu_clocks
from edge_trt_ros.reports.node_benchmark import (
    SHUTDOWN_ALLOWANCE_S,
    NodeBenchConfig,
    PowerTrace,
    steady_efficiency,
)
from edge_trt_ros.reports.schema import validate


class _Unused:
    """PowerTrace's sensor is only read by its thread, which these tests never start."""

    name = scope = source = "unused"
    estimated = False


def test_trace_integrates_samples_and_prefers_the_counter() -> None:
    trace = PowerTrace(_Unused())  # type: ignore[arg-type]
    for t in range(11):  # 10 W sampled once a second, no counter
        trace.add(PowerReading(10.0, float(t), "s", "sampled"))
    assert trace.mean_watts(2.0, 7.5) == pytest.approx(10.0)
    assert trace.mean_watts(-1.0, 5.0) is None and trace.mean_watts(5.0, 11.0) is None
    counted = PowerTrace(_Unused())  # type: ignore[arg-type]
    for t in range(11):  # the counter says 5 J/s; the instantaneous figure is noise
        counted.add(PowerReading(999.0 if t % 2 else 1.0, float(t), "s", "nvml",
                                 energy_j=5.0 * t))
    assert counted.mean_watts(1.0, 9.0) == pytest.approx(5.0)


@pytest.mark.parametrize("startup", [0.2, 3.0])
@pytest.mark.parametrize("tail", [0.05, 1.0 + SHUTDOWN_ALLOWANCE_S])
def test_energy_window_lies_inside_the_publishing_time(startup: float, tail: float) -> None:
    config = NodeBenchConfig(model_path="m.onnx", window_s=8.0, drain_s=1.0)
    start = 100.0 + startup  # the feeder published from `start` for 8 s, exited `tail` later
    t_exit = start + 8.0 + tail
    t0, t1 = config.interior(t_exit, 8.0)
    assert start < t0 < t1 <= start + 8.0
    assert config.min_window_s() <= 8.0


def test_steady_state_efficiency() -> None:
    mj, fpw, tops = steady_efficiency(50.0, 25.0, 10**9)
    assert (mj, fpw) == (2000.0, 0.5) and tops == pytest.approx(2 * 10**9 * 0.5 / 1e12)
    assert steady_efficiency(-1.0, 25.0, None) == (None, None, None)
    assert steady_efficiency(10.0, 0.0, None) == (None, None, None)


def test_cpu_clocks_read_cpufreq_and_say_why_when_absent(tmp_path: Path) -> None:
    for i, (gov, cur) in enumerate((("performance", "2400000"), ("powersave", "800000"))):
        d = tmp_path / f"cpu{i}" / "cpufreq"
        d.mkdir(parents=True)
        (d / "scaling_governor").write_text(gov + "\n")
        (d / "scaling_cur_freq").write_text(cur + "\n")
        (d / "cpuinfo_max_freq").write_text("3000000\n")
    got = cpu_clocks(tmp_path)
    assert got["readable"] is True
    assert got["cpus"]["cpu1"] == {"governor": "powersave", "cur_mhz": 800, "max_mhz": 3000}
    absent = cpu_clocks(tmp_path / "nothing")
    assert absent["readable"] is False and "cpufreq" in absent["why"]
    record = clocks_record()
    assert set(record) == {"cpu", "jetson", "nvml"}
    assert all("readable" in v for v in record.values())


def test_node_mode_refuses_options_the_node_takes_from_its_params_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edge_trt_ros.cli import benchmark as cli

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["benchmark", "--node", "--threads", "2", "--evaluate", "50",
                              "--out", str(tmp_path)])
    assert cli.run(args) == 2
    err = capsys.readouterr().err
    assert "--threads, --evaluate do not apply" in err
    assert not list(tmp_path.iterdir())


@pytest.mark.skipif(os.environ.get("EDGE_TRT_NODE_BENCH_TEST") != "1",
                    reason="about 3 minutes through the node: set EDGE_TRT_NODE_BENCH_TEST=1")
def test_node_mode_end_to_end(tmp_path: Path) -> None:
    from edge_trt_ros.cli import benchmark as cli

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["benchmark", "--node", "--quick", "--repeats", "1",
                              "--precisions", "fp32,int8", "--out", str(tmp_path)])
    assert cli.run(args) == 0
    result = json.loads((tmp_path / "benchmark.json").read_text())
    assert validate(result) == [] and result["kind"] == "node"
    for e in result["entries"]:
        assert e["node"]["peak_fps"] > 0 and e["node"]["at_rate"]["frames_sent"] > 0
        assert e["efficiency"]["mj_per_frame"] is not None


@pytest.mark.parametrize("sec,nanosec", [(0, 1), (1_764_000_000, 999_999_999), (-3, 5)])
def test_the_feeder_reads_the_stamp_of_a_serialized_answer(sec: int, nanosec: int) -> None:
    """bench/feeder.py counts answers from their serialized bytes: the stamp it reads is the
    one rclpy serialized, detections and frame id after it notwithstanding."""
    import importlib.util

    from rclpy.serialization import serialize_message
    from vision_msgs.msg import Detection2D, Detection2DArray

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("feeder", root / "bench" / "feeder.py")
    assert spec and spec.loader
    feeder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(feeder)
    msg = Detection2DArray(detections=[Detection2D(), Detection2D()])
    msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
    msg.header.frame_id = "camera_optical_frame"
    assert feeder.header_stamp_ns(serialize_message(msg)) == sec * 1_000_000_000 + nanosec
