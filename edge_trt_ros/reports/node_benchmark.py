"""The benchmark through the running node: ros2_benchmark's figures plus watts and mJ/frame.

The detector runs as its own process, started the way a user starts it without `ros2
launch` (``python -m edge_trt_ros.ros.detector_node --ros-args --params-file
config/detector.yaml ...``), on the node benchmark's camera topic with reliable input QoS
(so the transport loses nothing and every missed frame is the node's). The camera side is
``bench/feeder.py``, a separate process per window (its own GIL and DDS stack), driven as
bench/node.py drives it:

* ``--mode switch``: put the node on (precision, fusion profile) through ``~/switch_engine``;
* ``--mode adaptive``: peak throughput, the feeder keeping ``workers + 1`` frames in flight,
  so the node always holds its next frame and never drops one;
* ``--mode rate --hz R``: latency (image stamp to detections received), missed frames
  (sent, never answered) and energy at a fixed camera rate, as Isaac ROS tables report
  at 30 Hz.

Power is the machine's, sampled in this process the whole time (:class:`PowerTrace`), so it
covers the node and the feeder alike (the feeder's publishing is part of any camera
pipeline). The feeder reports no timestamps, only how long it published; the energy of a
window is therefore taken over an interior part of it that is inside the publishing time
whatever the feeder's start-up and shutdown took: from ``head`` after the earliest
possible start to ``tail`` before its exit (``tail`` = the answer drain + a shutdown
allowance). mJ/frame = mean watts over that part / answered frames per second.

Jitter at the fixed rate is bench/feeder.py's ``jitter_ms`` (ros2_benchmark's frame-to-frame
jitter, |diff(diff(receive times))|): the median over repeats of each statistic.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from edge_trt_ros.choices import AUTO, PRECISIONS
from edge_trt_ros.engines.registry import resolve_backend
from edge_trt_ros.macs import count_macs
from edge_trt_ros.power.energy import measure_idle
from edge_trt_ros.power.reading import PowerSensor
from edge_trt_ros.power.select import open_power_sensor
from edge_trt_ros.reports.benchmark import Progress as Step
from edge_trt_ros.reports.benchmark import (
    ProgressFn,
    accuracy_from_manifest,
    mark_frontier,
    shipped_model,
)
from edge_trt_ros.reports.environment import environment_record
from edge_trt_ros.reports.figures import spread
from edge_trt_ros.reports.schema import SCHEMA
from edge_trt_ros.resources import find_resource
from edge_trt_ros.runtime.detector_runtime import RuntimeConfig
from edge_trt_ros.variants.catalog import Catalog
from edge_trt_ros.variants.manifest import load_manifest

log = logging.getLogger("edge_trt_ros.reports.node_benchmark")

ROOT = Path(__file__).resolve().parents[2]
FEEDER = ROOT / "bench" / "feeder.py"
TOPIC = "/bench_camera/image_raw"
SHUTDOWN_ALLOWANCE_S = 1.5  # feeder: executor shutdown, node teardown, JSON write
SAMPLE_PERIOD_S = 0.05
NODE_READY = "active: subscribed to"


@dataclass(frozen=True)
class NodeBenchConfig:
    model_path: str
    precisions: tuple[str, ...] = PRECISIONS
    profiles: tuple[str, ...] = ("max",)
    window_s: float = 15.0
    repeats: int = 3
    idle_s: float = 10.0
    rate_hz: float = 30.0
    workers: int | None = None  # None: the params file's
    hardware_profile: str = AUTO
    variants_dir: str = ""
    drain_s: float = 1.0
    params_file: str = ""  # "" = the package's config/detector.yaml

    def interior(self, t_exit: float, published_s: float) -> tuple[float, float]:
        """The part of a feeder window that lies inside its publishing time."""
        tail = self.drain_s + SHUTDOWN_ALLOWANCE_S
        return t_exit - published_s + tail + 0.5, t_exit - tail

    def min_window_s(self) -> float:
        return 2 * (self.drain_s + SHUTDOWN_ALLOWANCE_S) + 1.5


class PowerTrace:
    """Power sampled on a thread for the whole run; energy between any two instants.

    Cumulative energy per sample: the counter difference where the sensor has one (and it
    did not jump backwards), else the trapezoid; any instant is interpolated linearly."""

    def __init__(self, sensor: PowerSensor, period_s: float = SAMPLE_PERIOD_S) -> None:
        self.sensor = sensor
        self.period_s = period_s
        self.t: list[float] = []
        self.cum_j: list[float] = [0.0]
        self._last: Any = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="edge-trt-trace", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                r = self.sensor.read()
            except Exception as exc:  # FallbackSensor never raises; belt and braces
                log.debug("power read failed: %s", exc)
            else:
                self.add(r)
            self._stop.wait(self.period_s)

    def add(self, r: Any) -> None:
        with self._lock:
            last = self._last
            if last is not None:
                if r.t <= last.t:
                    return
                if (r.energy_j is not None and last.energy_j is not None
                        and r.source == last.source and r.energy_j >= last.energy_j):
                    d = r.energy_j - last.energy_j
                else:
                    w0 = last.watts if np.isfinite(last.watts) else r.watts
                    w1 = r.watts if np.isfinite(r.watts) else w0
                    d = 0.5 * (w0 + w1) * (r.t - last.t) if np.isfinite(w0 + w1) else 0.0
                self.cum_j.append(self.cum_j[-1] + d)
            self.t.append(r.t)
            self._last = r

    def start(self) -> PowerTrace:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)

    def mean_watts(self, t0: float, t1: float) -> float | None:
        """Mean power over [t0, t1], None when the trace does not cover it."""
        with self._lock:
            if len(self.t) < 2 or t1 <= t0 or t0 < self.t[0] or t1 > self.t[-1]:
                return None
            e0, e1 = np.interp([t0, t1], self.t, self.cum_j[: len(self.t)])
        return float(e1 - e0) / (t1 - t0)


def _env() -> dict[str, str]:
    """The children's environment: a DDS domain of their own unless one is set (another
    benchmark's node on the same topic must not answer our frames), loopback only."""
    env = dict(os.environ)
    env.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 100)))
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return env


class Feeder:
    """bench/feeder.py as a subprocess; returns its JSON and when it exited."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        if not FEEDER.is_file():
            raise ValueError(f"--node needs the source checkout's {FEEDER} (the camera side "
                             "of the node benchmark); run from the repository")
        self.tmp, self.env = tmp, env

    def run(self, mode: str, seconds: float, **options: object) -> tuple[dict[str, Any], float]:
        out = self.tmp / f"feed-{time.monotonic_ns()}.json"
        cmd = [sys.executable, str(FEEDER), "--mode", mode, "--seconds", f"{seconds:g}",
               "--topic", TOPIC, "--out", str(out)]
        for key, value in options.items():
            cmd += [f"--{key.replace('_', '-')}", str(value)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env=self.env)
        _, err = proc.communicate(timeout=seconds + 180)
        t_exit = time.monotonic()
        if proc.returncode != 0 or not out.is_file():
            raise RuntimeError(f"bench/feeder.py --mode {mode} failed (exit {proc.returncode})"
                               f": {err.decode(errors='replace')[-1500:]}")
        return json.loads(out.read_text()), t_exit


class NodeProcess:
    """The detector node as a process on the bench topic, its log in a file."""

    def __init__(self, config: NodeBenchConfig, tmp: Path, env: dict[str, str]) -> None:
        params_file = config.params_file or str(find_resource("config/detector.yaml"))
        self.params_file = params_file
        overrides = {"model_path": config.model_path, "input_qos.reliability": "reliable",
                     "input_qos.depth": "10", "engine_cache_dir": str(tmp / "cache")}
        if config.workers is not None:
            overrides["workers"] = str(config.workers)
        if config.variants_dir:
            overrides["variants_dir"] = config.variants_dir
        self.command = [sys.executable, "-m", "edge_trt_ros.ros.detector_node", "--ros-args",
                        "-r", "__node:=detector", "--params-file", params_file]
        for name, value in overrides.items():
            self.command += ["-p", f"{name}:={value}"]
        self.command += ["-r", f"image:={TOPIC}"]
        self.log = tmp / "detector.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT,
                                         env=env)

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if NODE_READY in self.log.read_text(errors="replace"):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError("the detector node did not become active (is the ROS environment "
                           "sourced? `source scripts/env.sh`); its log:\n"
                           + self.log.read_text(errors="replace")[-3000:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def _params(params_file: str) -> dict[str, Any]:
    doc = yaml.safe_load(Path(params_file).read_text())
    params: dict[str, Any] = doc["/**"]["ros__parameters"]
    return params


def _jitter(runs: list[dict[str, float] | None]) -> dict[str, float | None] | None:
    """Median over repeats of each jitter statistic (None when no repeat measured it)."""
    measured = [j for j in runs if j]
    if not measured:
        return None
    return {k: _r(_median([j[k] for j in measured])) for k in ("min", "max", "mean", "std")}


def _median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None and np.isfinite(v)]
    return float(statistics.median(values)) if values else None


def run_node(config: NodeBenchConfig, progress: ProgressFn | None = None) -> dict[str, Any]:
    """Measure every (precision, profile) through the node; the result's ``kind`` is node."""
    if config.window_s < config.min_window_s():
        raise ValueError(f"--window-s {config.window_s:g} is too short for --node: the energy "
                         f"window needs at least {config.min_window_s():g} s (publishing "
                         "minus the feeder's start-up and shutdown allowance)")
    backend, device, why = resolve_backend(AUTO, AUTO)
    runtime = RuntimeConfig(model_path=config.model_path, backend=backend, device=device,
                            variants_dir=config.variants_dir, shipped_model=shipped_model())
    catalog = Catalog(config.model_path, runtime.catalog_dir())
    how = (load_manifest(catalog.manifest_path).get("evaluation") or {}).get("how") \
        if catalog.manifest_path.is_file() else None
    pairs = [(p, f) for p in config.precisions for f in config.profiles]
    macs = count_macs(config.model_path)
    sensor, detection = open_power_sensor(config.hardware_profile)
    total = 3 + len(pairs) * config.repeats * 3
    done = 0

    def step(stage: str, label: str, detail: str = "") -> None:
        nonlocal done
        done += 1
        if progress:
            progress(Step(done, total, stage, label, detail))

    environment = environment_record({"model": config.model_path}, config.hardware_profile)
    env = _env()
    tmp = Path(tempfile.mkdtemp(prefix="edge_trt_node_bench."))
    feeder = Feeder(tmp, env)
    idle_w = measure_idle(sensor, config.idle_s, SAMPLE_PERIOD_S) if config.idle_s > 0 else None
    step("idle", "idle before (no node)", f"{idle_w:.2f} W" if idle_w is not None else "")
    trace = PowerTrace(sensor).start()
    node = NodeProcess(config, tmp, env)
    raw: dict[tuple[str, str], list[dict[str, Any]]] = {pair: [] for pair in pairs}
    errors: dict[tuple[str, str], str] = {}
    try:
        node.wait_ready()
        params = _params(node.params_file)
        workers = config.workers if config.workers is not None else int(params["workers"])
        n_workers, threads = RuntimeConfig(model_path=config.model_path, workers=workers,
                                           intra_op_threads=int(params["intra_op_threads"])
                                           ).workers_for(device.partition(":")[0])
        inflight = n_workers + 1
        feeder.run("adaptive", 2.0)  # warm the DDS path and the engine
        step("start", "node", f"{n_workers} worker(s) x {threads or 'all'} thread(s)")
        for r in range(config.repeats):
            order = pairs[r % len(pairs):] + pairs[:r % len(pairs)]
            for pair in order:
                label = f"{pair[0]}/{pair[1]}"
                if pair in errors:
                    done += 3
                    continue
                got, _ = feeder.run("switch", 0, switch_cycle=json.dumps([list(pair)]))
                sw = (got.get("switches") or [{}])[0]
                step("switch", label, f"{sw.get('switch_ms')} ms")
                if not sw.get("success"):
                    errors[pair] = f"switch refused: {sw.get('message', sw)}"
                    done += 2
                    continue
                peak, t_peak = feeder.run("adaptive", config.window_s, inflight=inflight,
                                          drain_s=config.drain_s)
                peak_w = trace.mean_watts(*config.interior(t_peak, peak["seconds"]))
                step("peak", label, f"{peak['answered_fps']:.1f} fps, {peak_w or 0:.1f} W")
                at, t_rate = feeder.run("rate", config.window_s, hz=config.rate_hz,
                                        drain_s=config.drain_s)
                rate_w = trace.mean_watts(*config.interior(t_rate, at["seconds"]))
                step("rate", label, f"p50 {at['latency_ms']['p50']:.1f} ms, lost "
                     f"{at['frames_lost']}")
                raw[pair].append({"switch": sw, "peak": peak, "peak_w": peak_w, "rate": at,
                                  "rate_w": rate_w})
    finally:
        node.stop()
        trace.stop()
    idle_after = measure_idle(sensor, config.idle_s, SAMPLE_PERIOD_S) if config.idle_s > 0 \
        else None
    step("idle", "idle after", f"{idle_after:.2f} W" if idle_after is not None else "")
    entries, skipped = [], []
    kind = device.partition(":")[0]
    tail = config.drain_s + SHUTDOWN_ALLOWANCE_S
    for pair in pairs:
        label_p = f"{pair[0]}/{pair[1]}"
        if pair in errors or not raw[pair]:
            skipped.append({"label": label_p, "reason": errors.get(pair, "no window ran")})
            continue
        try:
            variant = catalog.pick(pair[0], backend, kind)
        except Exception as exc:
            skipped.append({"label": label_p, "reason": str(exc)})
            continue
        entries.append(_node_entry(variant, pair[1], raw[pair], config, idle_w, macs,
                                   sensor, accuracy_from_manifest(variant, how)))
    sensor.close()
    result: dict[str, Any] = {
        "schema": SCHEMA, "kind": "node",
        "title": f"{Path(config.model_path).name} through the detector node ({backend}, "
                 f"{device})",
        "source": {"tool": "edge-trt benchmark --node (bench/feeder.py as the camera)",
                   "imported_from": None, "note": None},
        "environment": environment | {"node_command": " ".join(node.command),
                                      "ros_domain_id": env["ROS_DOMAIN_ID"]},
        "config": {
            "backend": backend, "device": device, "backend_reason": why,
            "model": config.model_path, "variants_dir": str(catalog.directory),
            "macs_per_frame": macs, "precisions": list(config.precisions),
            "profiles": list(config.profiles), "window": f"{config.window_s:g} s",
            "window_s": config.window_s, "repeats": config.repeats, "warmup_frames": 0,
            "idle_s": config.idle_s, "rate_hz": config.rate_hz, "drain_s": config.drain_s,
            "workers": n_workers, "inflight_at_peak": inflight,
            "input_qos": "reliable, depth 10", "params_file": node.params_file,
            "frame": "640x480 bgr8, 8 rendered scenes in turn (bench/feeder.py)",
            "pipeline": "DDS -> the node's workers (view, letterbox, inference, decode) -> "
                        "Detection2DArray -> DDS",
            "latency_what": f"end to end at {config.rate_hz:g} Hz input (image stamp to "
                            "detections received), median over repeats of each percentile",
            "schedule": f"2 s of frames warm the node once; then per entry and repeat a "
                        f"switch, a {config.window_s:g} s peak window and a "
                        f"{config.window_s:g} s window at {config.rate_hz:g} Hz; "
                        f"{config.repeats} repeat(s)",
            "order": "entries interleaved: each repeat runs every entry once (switch, peak, "
                     "rate), starting one entry later than the previous repeat",
            "energy_window": f"interior of each window: from {tail + 0.5:g} s after the "
                             "feeder's earliest possible start to "
                             f"{tail:g} s before its exit",
        },
        "power": {
            "sensor": sensor.name, "scope": sensor.scope, "source": sensor.source,
            "estimated": bool(sensor.estimated), "skipped": dict(detection.skipped),
            "sample_period_s": SAMPLE_PERIOD_S,
            "idle": {"watts": idle_w, "seconds": config.idle_s,
                     "when": "before the node started"} if idle_w is not None else None,
            "idle_after": {"watts": idle_after, "seconds": config.idle_s,
                           "when": "after the node stopped"} if idle_after is not None
            else None,
        },
        "entries": entries, "skipped": skipped, "frontier": [],
        "notes": [
            "Jitter: ros2_benchmark's frame-to-frame jitter (|diff(diff(receive times))|) at "
            "the fixed rate, median over repeats.",
            "Power covers the whole machine: the node and the feeder process publishing "
            "the camera frames.",
        ] + (["Power is ESTIMATED from the hardware profile and CPU utilisation (no power "
              "sensor here)."] if sensor.estimated else []),
    }
    mark_frontier(result)
    return result


def _node_entry(variant: Any, profile: str, runs: list[dict[str, Any]],
                config: NodeBenchConfig, idle_w: float | None, macs: int | None,
                sensor: Any, accuracy: dict[str, Any] | None) -> dict[str, Any]:
    answered = sum(r["peak"]["frames_answered"] for r in runs)
    seconds = sum(r["peak"]["seconds"] for r in runs)
    peak_fps = answered / seconds if seconds else None
    peak_w = _mean([r["peak_w"] for r in runs])
    rate_w = _mean([r["rate_w"] for r in runs])
    rate_fps = _mean([r["rate"]["answered_fps"] for r in runs])
    mj, fpw, tops = steady_efficiency(peak_w, peak_fps, macs)
    dmj, dfpw, dtops = steady_efficiency(
        None if peak_w is None or idle_w is None else peak_w - idle_w, peak_fps, macs)
    lat = {k: _median([r["rate"]["latency_ms"][k] for r in runs])
           for k in ("p50", "p90", "p95", "p99")}
    latency = {"min": None, **{k: _r(v) for k, v in lat.items()}, "max": None, "mean": None}
    what = f"one {config.window_s:g} s window per repeat"
    return {
        "label": f"{variant.name}/{profile}", "variant": variant.name,
        "precision": variant.precision, "fusion_profile": profile, "file": str(variant.path),
        "sha256": variant.sha256, "recipe": variant.recipe, "served": True,
        "frames": answered, "seconds": round(seconds, 3), "fps": _r(peak_fps, 2),
        "fps_spread": spread([r["peak"]["answered_fps"] for r in runs], what, 2),
        "latency_ms": latency, "latency_histogram": None, "stages_ms": None,
        "power": {"mean_watts": _r(peak_w), "watts_spread": spread([r["peak_w"] for r in runs],
                                                                   what),
                  "energy_j": None, "method": "trace interior", "estimated":
                  bool(sensor.estimated), "scope": sensor.scope, "source": sensor.source},
        "efficiency": {"mj_per_frame": _r(mj), "mj_per_frame_above_idle": _r(dmj),
                       "fps_per_watt": _r(fpw, 4), "fps_per_watt_above_idle": _r(dfpw, 4),
                       "tops_per_watt": _r(tops, 5), "tops_per_watt_above_idle": _r(dtops, 5),
                       "mj_per_frame_spread": spread(
                           [1000 * r["peak_w"] / r["peak"]["answered_fps"]
                            if r["peak_w"] is not None and r["peak"]["answered_fps"] else None
                            for r in runs], what)},
        "accuracy": accuracy, "frontier": False,
        "node": {
            "peak_fps": _r(peak_fps, 2),
            "peak_fps_spread": spread([r["peak"]["answered_fps"] for r in runs], what, 2),
            "peak_frames_lost": sum(r["peak"]["frames_lost"] for r in runs),
            "peak_latency_ms": {k: _r(_median([r["peak"]["latency_ms"][k] for r in runs]))
                                for k in ("p50", "p90", "p95", "p99")},
            "rate_hz": config.rate_hz,
            "at_rate": {
                "latency_ms": latency,
                "frames_sent": sum(r["rate"]["frames_sent"] for r in runs),
                "frames_answered": sum(r["rate"]["frames_answered"] for r in runs),
                "missed_frames": sum(r["rate"]["frames_lost"] for r in runs),
                "jitter_ms": _jitter([r["rate"].get("jitter_ms") for r in runs]),
                "answered_fps": _r(rate_fps, 2),
                "mean_watts": _r(rate_w),
                "mj_per_frame": _r(1000 * rate_w / rate_fps) if rate_w is not None and rate_fps
                else None,
                "mj_per_frame_above_idle": _r(1000 * (rate_w - idle_w) / rate_fps)
                if rate_w is not None and rate_fps and idle_w is not None else None,
            },
            "switch_ms": [r["switch"].get("switch_ms") for r in runs],
        },
        "settings": None,
    }


def steady_efficiency(watts: float | None, fps: float | None, macs: int | None
                      ) -> tuple[float | None, float | None, float | None]:
    """(mJ/frame, FPS/W, TOPS/W) of a steady state: each second, ``fps`` frames for
    ``watts`` joules (the formulas of :func:`~edge_trt_ros.power.energy.efficiency`)."""
    if watts is None or not fps or not watts > 0:
        return None, None, None
    return 1000 * watts / fps, fps / watts, 2 * macs * fps / watts / 1e12 if macs else None


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)
