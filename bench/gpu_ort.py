#!/usr/bin/env python3
"""ONNX Runtime's CUDA provider on this GPU: variants x fusion profiles, NVML energy, e2e.

Every engine is opened the way the node opens it (``registry.open_engine`` on an
``EngineSpec`` with device ``cuda:0``): I/O bound to fixed device buffers, outputs copied to
pinned memory on the engine's stream, a CUDA graph where ONNX Runtime allows one. The
engine loop is ``engine.infer_device(engine.input_device_ptr)`` on a real test frame that
the CUDA letterbox wrote into the input once: batch 1, one frame at a time, outputs read
back every frame (what the node does). Energy is the difference of NVML's total-energy
counter (board scope) over each window; the idle baseline is measured in the same process.

Phases (separate processes, so each fits the GPU machine's 10-minute command limit):

* ``main``: idle baseline (``--idle-s``), each variant at profile ``max`` for ``--window-s``
  (default 60 s, MLPerf's minimum), the other fusion profiles for ``--short-s`` (energy
  too), then a shorter idle window to check drift.
* ``extra``: the convolution layout and the CUDA graph against the table's choice; where
  ONNX Runtime places each node and the copies it inserts (its verbose log and the
  optimised graph) per variant at ``max``/``none``;
  fp16 on stress frames (unprotected vs measured headroom); the pipeline from a 1920x1080
  bgr8 host frame (pinned and pageable) through the CUDA letterbox to detections, against
  the CPU pipeline; mAP@0.5 per lux bin on the GPU.
* ``report``: merges phase JSONs into one JSON and a Markdown file.

    PYTHONPATH=. python bench/gpu_ort.py main  --variants DIR --out main.json
    PYTHONPATH=. python bench/gpu_ort.py extra --variants DIR --out extra.json
    PYTHONPATH=. python bench/gpu_ort.py report main.json extra.json \\
        --json docs/results/gpu_ort.json --md docs/results/gpu_ort.md
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from edge_trt_ros.dataset import Sample, render_sample, split_lux, split_seeds
from edge_trt_ros.detector import Detector
from edge_trt_ros.engines.onnxruntime_backend import (
    CUDA_PROVIDER,
    OnnxRuntimeEngine,
    cuda_provider_options,
    session_options,
)
from edge_trt_ros.engines.registry import open_engine
from edge_trt_ros.engines.spec import EngineSpec
from edge_trt_ros.model_info import read_model_info
from edge_trt_ros.variants.manifest import load_manifest, machine, now_iso, variant_path
from edge_trt_ros.vision.decode import DecodeParams
from edge_trt_ros.vision.image import image_view, rgb_view

ROOT = Path(__file__).resolve().parents[1]

VARIANTS = ("fp32", "fp16", "int8-trt", "int8-ort")
OTHER_PROFILES = ("balanced", "conservative", "none")
SECTIONS = ("layout", "placement", "stress", "e2e", "accuracy")
DEVICE = "cuda:0"


# --- measurement ---------------------------------------------------------------------------


class Board:
    """NVML on GPU 0: the energy counter and clock/power/temperature samples (None-safe)."""

    def __init__(self) -> None:
        self.sensor: Any = None
        self.error = ""
        try:
            from edge_trt_ros.power.nvml import probe_nvml

            self.sensor = probe_nvml(0)
        except Exception as exc:  # no NVML here: timings still count, energy is None
            self.error = str(exc)

    def energy_j(self) -> float | None:
        return None if self.sensor is None else self.sensor.energy_j()

    def sample(self) -> dict[str, float]:
        if self.sensor is None:
            return {}
        nv, h = self.sensor.library, self.sensor.handle
        out: dict[str, float] = {}
        with contextlib.suppress(Exception):
            out["sm_mhz"] = float(nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM))
            out["mem_mhz"] = float(nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_MEM))
            out["power_w"] = float(nv.nvmlDeviceGetPowerUsage(h)) / 1000.0
            out["temp_c"] = float(nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU))
        return out

    def describe(self) -> dict[str, Any]:
        if self.sensor is None:
            return {"nvml": f"unavailable: {self.error}"}
        nv, h = self.sensor.library, self.sensor.handle
        out: dict[str, Any] = {"source": self.sensor.source}
        queries: dict[str, Callable[[], Any]] = {
            "driver": nv.nvmlSystemGetDriverVersion,
            "name": lambda: nv.nvmlDeviceGetName(h),
            "power_limit_w": lambda: nv.nvmlDeviceGetEnforcedPowerLimit(h) / 1000.0,
            "max_sm_mhz": lambda: nv.nvmlDeviceGetMaxClockInfo(h, nv.NVML_CLOCK_SM),
            "max_mem_mhz": lambda: nv.nvmlDeviceGetMaxClockInfo(h, nv.NVML_CLOCK_MEM),
            "app_sm_mhz": lambda: nv.nvmlDeviceGetApplicationsClock(h, nv.NVML_CLOCK_SM),
            "persistence_mode": lambda: nv.nvmlDeviceGetPersistenceMode(h),
            "pstate": lambda: nv.nvmlDeviceGetPerformanceState(h),
            "memory_total_mib": lambda: nv.nvmlDeviceGetMemoryInfo(h).total / 2**20,
        }
        for key, query in queries.items():
            try:
                value = query()
                out[key] = value.decode() if isinstance(value, bytes) else value
            except Exception as exc:
                out[key] = f"n/a ({type(exc).__name__})"
        out["now"] = self.sample()
        return out


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    a = np.asarray(values)
    return {"min": round(float(a.min()), 1), "median": round(float(np.median(a)), 1),
            "max": round(float(a.max()), 1)}


class _NoBoard(Board):
    """No sensor: warm-up windows measure nothing."""

    def __init__(self) -> None:
        self.sensor = None
        self.error = "warm-up"


_NO_BOARD = _NoBoard()


def run_window(step: Callable[[], Any], seconds: float, board: Board, parts: int = 6
               ) -> dict[str, Any]:
    """Call ``step`` back to back for ``seconds``: latency percentiles, frames/s per part of
    the window (the spread), board energy from the counter, clock/power samples."""
    lat: list[float] = []
    part_frames = [0] * parts
    samples: list[dict[str, float]] = []
    e0 = board.energy_j()
    t0 = time.perf_counter()
    end = t0 + seconds
    next_sample = t0
    now = t0
    while now < end:
        t = time.perf_counter()
        step()
        now = time.perf_counter()
        lat.append((now - t) * 1e3)
        part_frames[min(int((now - t0) / seconds * parts), parts - 1)] += 1
        if now >= next_sample:
            samples.append(board.sample())
            next_sample = now + 0.5
    wall = time.perf_counter() - t0
    e1 = board.energy_j()
    a = np.asarray(lat)
    out: dict[str, Any] = {
        "seconds": round(wall, 2), "frames": len(lat), "fps": round(len(lat) / wall, 1),
        "latency_ms": {"p50": round(float(np.percentile(a, 50)), 3),
                       "p95": round(float(np.percentile(a, 95)), 3),
                       "p99": round(float(np.percentile(a, 99)), 3),
                       "mean": round(float(a.mean()), 3), "min": round(float(a.min()), 3),
                       "max": round(float(a.max()), 3)},
        "fps_per_part": [round(n / (seconds / parts), 1) for n in part_frames],
        "clocks": {k: _stats([s[k] for s in samples if k in s])
                   for k in ("sm_mhz", "mem_mhz", "power_w", "temp_c")},
    }
    if e0 is not None and e1 is not None:
        out["energy_j"] = round(e1 - e0, 3)
        out["power_w"] = round((e1 - e0) / wall, 2)
    return out


def idle_window(seconds: float, board: Board) -> dict[str, Any]:
    samples = []
    e0, t0 = board.energy_j(), time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        samples.append(board.sample())
        time.sleep(0.5)
    wall = time.perf_counter() - t0
    e1 = board.energy_j()
    out: dict[str, Any] = {"seconds": round(wall, 2),
                           "clocks": {k: _stats([s[k] for s in samples if k in s])
                                      for k in ("sm_mhz", "mem_mhz", "power_w", "temp_c")}}
    if e0 is not None and e1 is not None:
        out["energy_j"] = round(e1 - e0, 3)
        out["power_w"] = round((e1 - e0) / wall, 2)
    return out


def efficiency(window: dict[str, Any], idle_w: float | None) -> dict[str, Any]:
    """mJ/frame and frames per joule (= FPS/W), total and above the idle baseline."""
    if "energy_j" not in window or not window["frames"]:
        return {}
    e, n, t = window["energy_j"], window["frames"], window["seconds"]
    out = {"mj_per_frame": round(1000.0 * e / n, 2), "fps_per_w": round(n / e, 3)}
    if idle_w is not None:
        above = e - idle_w * t
        out["mj_per_frame_above_idle"] = round(1000.0 * above / n, 2)
        out["fps_per_w_above_idle"] = round(n / above, 3) if above > 0 else None
    return out


# --- what runs -----------------------------------------------------------------------------


def test_frame(wh: tuple[int, int] = (640, 480)) -> np.ndarray:
    seed = split_seeds("test", 1)[0]
    return render_sample(seed, *wh, lux=split_lux("test", seed)).image


def camera_frame_1080p() -> np.ndarray:
    """A real test scene as a 1920x1080 bgr8 camera frame."""
    import cv2

    rgb = cv2.resize(test_frame(), (1920, 1080), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(rgb[:, :, ::-1])


class Variants:
    def __init__(self, directory: Path) -> None:
        self.manifest = load_manifest(directory)
        self.names = [n for n in VARIANTS if n in self.manifest["variants"]]
        self.base = variant_path(self.manifest, "fp32")
        self.info = read_model_info(self.base)

    def path(self, name: str) -> Path:
        return variant_path(self.manifest, name)

    def precision(self, name: str) -> str:
        return str(self.manifest["variants"][name]["precision"])

    def spec(self, name: str, profile: str) -> EngineSpec:
        return EngineSpec("onnxruntime", str(self.path(name)), precision=self.precision(name),
                          fusion_profile=profile, device=DEVICE)


def engine_window(engine: Any, info: Any, seconds: float, board: Board,
                  warmup_s: float) -> dict[str, Any]:
    """The engine loop on one letterboxed test frame already in the engine's input."""
    from edge_trt_ros.gpu.letterbox import GpuLetterbox

    with GpuLetterbox(info.input_hw, info.input_layout, stream=engine.stream) as gl:
        gl(rgb_view(test_frame()), engine.input_device_ptr)
        engine.stream.synchronize()
    ptr = engine.input_device_ptr

    def step() -> None:
        engine.infer_device(ptr)

    run_window(step, warmup_s, _NO_BOARD)
    result = run_window(step, seconds, board)
    result["settings"] = dict(engine.info.settings)
    return result


def measure_engine(open_fn: Callable[[], Any], info: Any, seconds: float, board: Board,
                   idle_w: float | None, warmup_s: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    engine = open_fn()
    load_s = time.perf_counter() - t0
    try:
        result = engine_window(engine, info, seconds, board, warmup_s)
    finally:
        engine.release()
    result["load_s"] = round(load_s, 2)
    result.update(efficiency(result, idle_w))
    return result


def guarded(results: dict[str, Any], key: str, fn: Callable[[], Any], out: Path,
            doc: dict[str, Any]) -> None:
    """Run one measurement; record its error instead of losing the run; save progress."""
    t0 = time.perf_counter()
    print(f"[gpu_ort] {key} ...", flush=True)
    try:
        results[key] = fn()
    except Exception as exc:
        results[key] = {"error": f"{type(exc).__name__}: {exc}",
                        "traceback": traceback.format_exc(limit=4)}
        print(f"[gpu_ort] {key} FAILED: {exc}", flush=True)
    print(f"[gpu_ort] {key} done in {time.perf_counter() - t0:.1f} s", flush=True)
    write(out, doc)


def write(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    os.replace(tmp, path)


def environment(board: Board) -> dict[str, Any]:
    from edge_trt_ros.gpu.runtime import cuda_versions, device_identity

    env: dict[str, Any] = {
        "created": now_iso(), "machine": machine(), "platform": platform.platform(),
        "onnxruntime": ort.__version__, "onnxruntime_providers": ort.get_available_providers(),
        "cuda": cuda_versions(), "board": board.describe(),
        "numpy": np.__version__, "command": " ".join(sys.argv),
    }
    try:
        env["gpu"] = device_identity(0)
    except Exception as exc:  # recorded, so a result without a GPU says so
        env["gpu"] = f"none: {exc}"
    with contextlib.suppress(Exception):
        from onnxruntime.capi import build_and_package_info as build

        env["onnxruntime_build"] = {"package": build.package_name,
                                    "cuda_version": getattr(build, "cuda_version", None)}
    with contextlib.suppress(Exception):
        import torch

        env["cudnn_loaded_by_torch"] = str(torch.backends.cudnn.version())
        env["torch"] = torch.__version__
    return env


# --- phase main ----------------------------------------------------------------------------


def phase_main(args: argparse.Namespace) -> dict[str, Any]:
    v = Variants(args.variants)
    board = Board()
    doc: dict[str, Any] = {"phase": "main", "environment": environment(board),
                           "window_s": args.window_s, "short_s": args.short_s,
                           "idle_s": args.idle_s, "results": {}}
    res = doc["results"]
    guarded(res, "idle_before", lambda: idle_window(args.idle_s, board), args.out, doc)
    idle_w = res["idle_before"].get("power_w")
    for name in v.names:
        guarded(res, f"{name}/max", lambda name=name: measure_engine(
            lambda: open_engine(v.spec(name, "max")), v.info, args.window_s, board, idle_w,
            args.warmup_s), args.out, doc)
    for name in v.names:
        for profile in (p for p in OTHER_PROFILES if p in args.profiles):
            guarded(res, f"{name}/{profile}", lambda name=name, profile=profile: measure_engine(
                lambda: open_engine(v.spec(name, profile)), v.info, args.short_s, board, idle_w,
                args.warmup_s), args.out, doc)
    guarded(res, "idle_after", lambda: idle_window(args.idle_after_s, board), args.out, doc)
    return doc


# --- phase extra ---------------------------------------------------------------------------


@contextlib.contextmanager
def stderr_to(path: Path) -> Iterator[None]:
    """Send fd 2 (where ONNX Runtime's C++ logger writes) to ``path`` for a while."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "wb") as f:
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


_PLACED = re.compile(r"placed on \[(\w+)\]\. Number of nodes: (\d+)")
_NODE = re.compile(r"^(?:.*?\]\s)?\s+(\S+) \(([^()]*)\)\s*$")  # "  Shape (/model/Shape)"


def placement(path: Path, profile: str, layout: str | None = None) -> dict[str, Any]:
    """Where ONNX Runtime puts each node (its verbose log) and the optimised graph's op
    types: copies (Memcpy*) and Q/DQ nodes it left unfused."""
    import onnx

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="gpu_ort_place.") as tmp:
        log_path, opt_path = Path(tmp) / "ort.log", Path(tmp) / "optimized.onnx"
        options = session_options(profile, 0, optimized_model_path=opt_path)
        options.log_severity_level = 0
        provider = cuda_provider_options(0, profile, layout=layout)
        try:
            with stderr_to(log_path):
                session = ort.InferenceSession(str(path), options,
                                               providers=[CUDA_PROVIDER, "CPUExecutionProvider"],
                                               provider_options=[provider, {}])
            del session
        except Exception as exc:  # saving some optimised graphs can fail: log only then
            out["optimized_save_error"] = str(exc)[:300]
            options = session_options(profile, 0)
            options.log_severity_level = 0
            with stderr_to(log_path):
                session = ort.InferenceSession(str(path), options,
                                               providers=[CUDA_PROVIDER, "CPUExecutionProvider"],
                                               provider_options=[provider, {}])
            del session
        text = log_path.read_text(errors="replace")
        per_ep: dict[str, int] = {}
        cpu_nodes: Counter[str] = Counter()
        current = ""
        for line in text.splitlines():
            m = _PLACED.search(line)
            if m:
                current = m.group(1)
                per_ep[current] = per_ep.get(current, 0) + int(m.group(2))
                continue
            n = _NODE.search(line)
            if n and current == "CPUExecutionProvider":
                cpu_nodes[n.group(1)] += 1
            elif not n:
                current = current if "placed on" in line else ""
        out["nodes_per_provider"] = per_ep
        out["cpu_node_op_types"] = dict(cpu_nodes)
        out["log_memcpy_mentions"] = len(re.findall(r"Memcpy(?:To|From)Host", text))
        out["log_warnings"] = sorted({ln.split("] ", 1)[-1][:200] for ln in text.splitlines()
                                      if "[W:" in ln})[:8]
        if opt_path.is_file():
            graph = onnx.load(str(opt_path)).graph
            ops = Counter(n.op_type for n in graph.node)
            out["optimized_nodes"] = sum(ops.values())
            out["memcpy_nodes"] = ops.get("MemcpyToHost", 0) + ops.get("MemcpyFromHost", 0)
            out["qdq_nodes"] = ops.get("QuantizeLinear", 0) + ops.get("DequantizeLinear", 0)
            out["op_types"] = dict(ops.most_common(14))
    return out


def fp16_stress(v: Variants, per_kind: int) -> dict[str, Any]:
    """Non-finite outputs on stress frames: fp32, fp16 with headroom, fp16 converted whole."""
    import onnx

    from edge_trt_ros.variants.fp16 import convert_fp16
    from edge_trt_ros.variants.headroom import HeadroomSpec, stress_image, stress_tensors

    spec = HeadroomSpec(stress_per_kind=per_kind)
    tensors = list(stress_tensors(v.info.input_hw, v.info.input_layout, spec))
    out: dict[str, Any] = {"frames_per_kind": per_kind}
    with tempfile.TemporaryDirectory(prefix="gpu_ort_fp16.") as tmp:
        naive = Path(tmp) / "fp16_naive.onnx"
        onnx.save(convert_fp16(onnx.load(str(v.base))), str(naive))
        files = {"fp32": (v.base, "fp32"), "fp16 (headroom)": (v.path("fp16"), "fp16"),
                 "fp16 (converted whole)": (naive, "fp16")}
        for label, (path, precision) in files.items():
            engine = OnnxRuntimeEngine(path, precision=precision, device=DEVICE)
            per: dict[str, dict[str, int]] = {}
            peak: dict[str, float] = {}
            for kind, tensor in tensors:
                raw = np.array(engine.infer(tensor)[0][0])
                row = per.setdefault(kind, {"values": 0, "rows": 0})
                row["values"] += int((~np.isfinite(raw)).sum())
                row["rows"] += int((~np.isfinite(raw).all(axis=0)).sum())
                finite = raw[np.isfinite(raw)]
                peak[kind] = max(peak.get(kind, 0.0), float(np.abs(finite).max()))
            engine.release()
            det = Detector.from_spec(EngineSpec("onnxruntime", str(path), precision=precision,
                                                device=DEVICE), DecodeParams())
            boxes_nonfinite = 0
            for kind in per:
                for i in range(per_kind):
                    d = det.detect(stress_image(kind, i, spec.frame_wh, spec.seed))
                    boxes_nonfinite += int((~np.isfinite(d.boxes)).sum())
            out[label] = {"per_kind": per, "nonfinite_values": sum(r["values"]
                                                                   for r in per.values()),
                          "detector_rows_dropped": det.nonfinite_dropped,
                          "detector_frames_with_nonfinite": det.nonfinite_frames,
                          "nonfinite_box_values_returned": boxes_nonfinite,
                          "largest_finite_output": round(max(peak.values()), 1)}
            det.release()
    return out


def pipeline_window(det: Detector, view: Any, seconds: float, board: Board,
                    idle_w: float | None, warmup_s: float) -> dict[str, Any]:
    stages: list[tuple[float, float, float]] = []

    def step() -> None:
        det.detect(view)
        t = det.last_timing
        stages.append((t.preprocess_ms, t.inference_ms, t.decode_ms))

    run_window(step, warmup_s, _NO_BOARD)
    stages.clear()
    result = run_window(step, seconds, board)
    a = np.asarray(stages)
    result["stage_ms_mean"] = {"preprocess": round(float(a[:, 0].mean()), 3),
                               "inference": round(float(a[:, 1].mean()), 3),
                               "decode": round(float(a[:, 2].mean()), 3)}
    result["gpu_preprocess"] = det.gpu_preprocess
    result.update(efficiency(result, idle_w))
    return result


def end_to_end(v: Variants, seconds: float, board: Board, idle_w: float | None,
               warmup_s: float, cpu_threads: int) -> dict[str, Any]:
    from edge_trt_ros.gpu.runtime import PinnedBuffer

    frame = camera_frame_1080p()
    pinned = PinnedBuffer(frame.shape)
    pinned.array[:] = frame
    views = {"pageable": image_view(frame, "bgr8", 1080, 1920, 1920 * 3),
             "pinned": image_view(pinned.array, "bgr8", 1080, 1920, 1920 * 3)}
    out: dict[str, Any] = {"frame": "1920x1080 bgr8 (a rendered test scene, resized)",
                           "cpu_threads": cpu_threads or f"onnxruntime default "
                                                         f"({os.cpu_count()} logical cores)"}
    runs: list[tuple[str, str, str, bool, str]] = [
        ("cpu fp32 (CPU letterbox + CPU provider)", "fp32", "cpu", False, "pageable"),
        ("cpu int8-ort (CPU letterbox + CPU provider)", "int8-ort", "cpu", False, "pageable"),
        ("cuda fp32, CPU letterbox + tensor H2D", "fp32", DEVICE, False, "pageable"),
        ("cuda fp32, CUDA letterbox, pageable frame", "fp32", DEVICE, True, "pageable"),
        ("cuda fp32, CUDA letterbox, pinned frame", "fp32", DEVICE, True, "pinned"),
        ("cuda fp16, CUDA letterbox, pageable frame", "fp16", DEVICE, True, "pageable"),
        ("cuda fp16, CUDA letterbox, pinned frame", "fp16", DEVICE, True, "pinned"),
    ]
    for label, name, device, gpu_pre, mem in runs:
        if name not in v.names:
            continue
        spec = EngineSpec("onnxruntime", str(v.path(name)), precision=v.precision(name),
                          fusion_profile="max", device=device, intra_op_threads=cpu_threads)
        info = read_model_info(spec.model_path)
        try:
            det = Detector(open_engine(spec), info, DecodeParams(), gpu_preprocess=gpu_pre)
            try:
                out[label] = pipeline_window(det, views[mem], seconds, board,
                                             idle_w if device != "cpu" else None, warmup_s)
                out[label]["detections_on_frame"] = len(det.detect(views[mem]))
            finally:
                det.release()
        except Exception as exc:
            out[label] = {"error": f"{type(exc).__name__}: {exc}"}
    pinned.close()
    return out


def _render(seed: int) -> Sample:
    return render_sample(seed, 640, 480, lux=split_lux("test", seed))


def accuracy(v: Variants, count: int) -> dict[str, Any]:
    """mAP@0.5 per lux bin of each variant at profile max on the GPU (fp32 = reference)."""
    from edge_trt_ros.evaluation import EVAL_DECODE
    from edge_trt_ros.variants.evaluate import score, summarise

    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
        samples = list(pool.map(_render, split_seeds("test", count), chunksize=8))
    out: dict[str, Any] = {"frames": len(samples), "render_s": round(time.perf_counter() - t0, 1),
                           "decode": {"confidence": EVAL_DECODE.confidence_threshold,
                                      "nms_iou": EVAL_DECODE.nms_iou_threshold}}
    reference = None
    for name in v.names:
        try:
            det = Detector.from_spec(v.spec(name, "max"), EVAL_DECODE)
            try:
                t = time.perf_counter()
                summary = summarise(score(det, samples), reference)
                summary["seconds"] = round(time.perf_counter() - t, 1)
                summary["nonfinite_rows_dropped"] = det.nonfinite_dropped
                summary["gpu_preprocess"] = det.gpu_preprocess
            finally:
                det.release()
        except Exception as exc:  # one variant failing must not cost the others
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        if name == "fp32":
            reference = summary
        out[name] = summary
    return out


def phase_extra(args: argparse.Namespace) -> dict[str, Any]:
    v = Variants(args.variants)
    board = Board()
    doc: dict[str, Any] = {"phase": "extra", "environment": environment(board),
                           "short_s": args.short_s, "results": {}}
    res = doc["results"]
    guarded(res, "idle", lambda: idle_window(args.idle_s, board), args.out, doc)
    idle_w = res["idle"].get("power_w")
    want = set(args.sections)
    for name in v.names if "layout" in want else ():  # the CUDA provider's NHWC layout
        guarded(res, f"{name}/max-nhwc", lambda name=name: measure_engine(
            lambda: OnnxRuntimeEngine(v.path(name), precision=v.precision(name),
                                      fusion_profile="max", device=DEVICE, cuda_layout="nhwc"),
            v.info, args.short_s, board, idle_w, args.warmup_s), args.out, doc)
    for name in v.names[:2] if "layout" in want else ():  # what the CUDA graph saves
        guarded(res, f"{name}/max-nograph", lambda name=name: measure_engine(
            lambda: OnnxRuntimeEngine(v.path(name), precision=v.precision(name),
                                      fusion_profile="max", device=DEVICE, cuda_graph=False),
            v.info, args.short_s, board, idle_w, args.warmup_s), args.out, doc)
    for name in v.names if "placement" in want else ():
        for profile in ("max", "none"):
            guarded(res, f"placement/{name}/{profile}",
                    lambda name=name, profile=profile: placement(v.path(name), profile),
                    args.out, doc)
        guarded(res, f"placement/{name}/max-nhwc",
                lambda name=name: placement(v.path(name), "max", "nhwc"), args.out, doc)
    if "stress" in want:
        guarded(res, "fp16_stress", lambda: fp16_stress(v, args.stress_per_kind), args.out,
                doc)
    if "e2e" in want:
        guarded(res, "end_to_end", lambda: end_to_end(v, args.e2e_s, board, idle_w,
                                                       args.warmup_s, args.cpu_threads),
                args.out, doc)
    if "accuracy" in want:
        guarded(res, "accuracy", lambda: accuracy(v, args.eval_count), args.out, doc)
    return doc


# --- report --------------------------------------------------------------------------------


def _f(x: Any, digits: int = 2) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _spread(r: dict[str, Any]) -> str:
    parts = r.get("fps_per_part") or []
    return f"{min(parts):.0f}-{max(parts):.0f}" if parts else "n/a"


def _above(r: dict[str, Any], idle_w: float | None) -> str:
    """mJ/frame above another idle baseline (the board idling at full clocks after work)."""
    if idle_w is None or "energy_j" not in r:
        return "n/a"
    return f"{1000.0 * (r['energy_j'] - idle_w * r['seconds']) / r['frames']:.2f}"


def _verdict(name: str, a: dict[str, Any]) -> str:
    if name == "fp32":
        return "reference"
    return "pass" if a.get("within_guard") else "FAIL"


def report(paths: list[Path], json_out: Path, md_out: Path) -> None:
    docs = [json.loads(p.read_text()) for p in paths]
    merged: dict[str, Any] = {"benchmark": "gpu_ort", "phases": docs}
    results: dict[str, Any] = {}
    for d in docs:
        for k, r in d["results"].items():
            results[f"{d['phase']}:{k}" if k.startswith("idle") else k] = r
    merged["results"] = results
    write(json_out, merged)
    env = docs[0]["environment"]
    board = env.get("board", {})
    lines = ["# ONNX Runtime CUDA provider on the GPU machine (bench/gpu_ort.py)", "",
             f"GPU {env.get('gpu')}, driver {board.get('driver')}, power limit "
             f"{_f(board.get('power_limit_w'), 0)} W, max SM clock {board.get('max_sm_mhz')} MHz; "
             f"onnxruntime {env.get('onnxruntime')} ({env.get('onnxruntime_build', {})}); "
             f"CUDA {env.get('cuda')}; cuDNN (loaded by torch) {env.get('cudnn_loaded_by_torch')}; "
             f"{env.get('machine', {}).get('cpu')} x{env.get('machine', {}).get('logical_cores')}; "
             f"{env.get('created')}.", ""]
    idle = {k: r for k, r in results.items() if k.split(":")[-1].startswith("idle")}
    lines += ["Idle board power (NVML energy counter): " + "; ".join(
        f"{k} {_f(r.get('power_w'))} W over {r.get('seconds')} s at SM "
        f"{r.get('clocks', {}).get('sm_mhz', {}).get('median')} MHz" for k, r in idle.items()),
        "", "'above idle' subtracts the idle window measured at the start of the same phase; "
        "'above warm idle' the main phase's closing idle window, when the clocks were still "
        "at their maximum after the work.", ""]
    acc = results.get("accuracy", {})
    lines += ["## Every variant at profile max (engine loop, batch 1, outputs read back)", "",
              "| variant | window s | frames/s | fps spread (6 parts) | p50 ms | p95 ms | p99 ms "
              "| board W | mJ/frame | mJ/frame above idle | mJ/frame above warm idle | FPS/W "
              "| FPS/W above idle | SM MHz (median) | CUDA graph | mAP@0.5 | dark | dim "
              "| bright | sunlit |", "|" + "---|" * 20]
    warm = results.get("main:idle_after", {}).get("power_w")
    for name in VARIANTS:
        r = results.get(f"{name}/max")
        if not r:
            continue
        if "error" in r:
            lines.append(f"| {name} | error: {r['error'][:120]} |" + " |" * 17)
            continue
        a = acc.get(name, {})
        bins = a.get("per_lux_bin_map50", {})
        lat = r["latency_ms"]
        lines.append(
            f"| {name} | {r['seconds']} | {r['fps']} | {_spread(r)} | {lat['p50']} | {lat['p95']} "
            f"| {lat['p99']} | {_f(r.get('power_w'))} | {_f(r.get('mj_per_frame'))} "
            f"| {_f(r.get('mj_per_frame_above_idle'))} | {_above(r, warm)} "
            f"| {_f(r.get('fps_per_w'))} "
            f"| {_f(r.get('fps_per_w_above_idle'))} "
            f"| {r['clocks'].get('sm_mhz', {}).get('median')} "
            f"| {r['settings'].get('cuda_graph', '')[:40]} | {_f(a.get('map50'), 4)} | "
            + " | ".join(_f(bins.get(b), 4) for b in ("dark", "dim", "bright", "sunlit")) + " |")
    lines += ["", "## Fusion profiles and CUDA options (shorter windows)", "",
              "| variant | run | window s | frames/s | fps spread | p50 ms | p99 ms | board W "
              "| mJ/frame | mJ/frame above idle | CUDA graph | layout |", "|" + "---|" * 12]
    for name in VARIANTS:
        for key, r in results.items():
            run = key[len(name) + 1:]
            if not key.startswith(f"{name}/"):
                continue
            if "error" in r:
                lines.append(f"| {name} | {run} | error: {r['error'][:150]} |" + " |" * 9)
                continue
            lines.append(
                f"| {name} | {run} | {r['seconds']} | {r['fps']} | {_spread(r)} "
                f"| {r['latency_ms']['p50']} | {r['latency_ms']['p99']} | {_f(r.get('power_w'))} "
                f"| {_f(r.get('mj_per_frame'))} | {_f(r.get('mj_per_frame_above_idle'))} "
                f"| {r['settings'].get('cuda_graph', '')[:40]} "
                f"| {r['settings'].get('cuda_layout', '')} |")
    lines += ["", "## Where ONNX Runtime runs each node (verbose log, optimised graph)", "",
              "| variant | profile | nodes on CUDA | nodes on CPU (op types) | Memcpy nodes "
              "| Q/DQ nodes left | optimised nodes |", "|" + "---|" * 7]
    for name in VARIANTS:
        for key, r in results.items():
            run = key[len(f"placement/{name}/"):]
            if not key.startswith(f"placement/{name}/"):
                continue
            if "error" in r:
                lines.append(f"| {name} | {run} | error: {r['error'][:150]} |" + " |" * 4)
                continue
            per = r.get("nodes_per_provider", {})
            lines.append(f"| {name} | {run} | {per.get('CUDAExecutionProvider', 0)} "
                         f"| {per.get('CPUExecutionProvider', 0)} {r.get('cpu_node_op_types', {})} "
                         f"| {r.get('memcpy_nodes', 'n/a')} | {r.get('qdq_nodes', 'n/a')} "
                         f"| {r.get('optimized_nodes', 'n/a')} |")
    stress = results.get("fp16_stress", {})
    if stress and "error" not in stress:
        lines += ["", f"## fp16 on stress frames on the GPU ({stress['frames_per_kind']} per kind)",
                  "", "| file | non-finite output values | per kind (rows) | detector rows "
                  "dropped | NaN/inf box values returned | largest finite output |",
                  "|---|---|---|---|---|---|"]
        for label, r in stress.items():
            if not isinstance(r, dict):
                continue
            kinds = ", ".join(f"{k} {v['rows']}" for k, v in r["per_kind"].items())
            lines.append(f"| {label} | {r['nonfinite_values']} | {kinds} "
                         f"| {r['detector_rows_dropped']} | {r['nonfinite_box_values_returned']} "
                         f"| {r['largest_finite_output']} |")
    e2e = results.get("end_to_end", {})
    if e2e and "error" not in e2e:
        lines += ["", f"## End to end: {e2e.get('frame')} -> detections (Detector.detect)", "",
                  f"CPU provider threads: {e2e.get('cpu_threads')}.", "",
                  "| pipeline | frames/s | fps spread | p50 ms | p95 ms | p99 ms | preprocess "
                  "| inference | decode | board W | mJ/frame |", "|" + "---|" * 11]
        for label, r in e2e.items():
            if not isinstance(r, dict):
                continue
            if "error" in r:
                lines.append(f"| {label} | error: {r['error'][:150]} |" + " |" * 9)
                continue
            s = r["stage_ms_mean"]
            lines.append(f"| {label} | {r['fps']} | {_spread(r)} | {r['latency_ms']['p50']} "
                         f"| {r['latency_ms']['p95']} | {r['latency_ms']['p99']} "
                         f"| {s['preprocess']} | {s['inference']} | {s['decode']} "
                         f"| {_f(r.get('power_w'))} | {_f(r.get('mj_per_frame'))} |")
    if acc and "error" not in acc:
        lines += ["", f"## Accuracy on the GPU: {acc.get('frames')} test frames, profile max", "",
                  "| variant | mAP@0.5 | mAP@0.5:0.95 | dark | dim | bright | sunlit "
                  "| worst drop vs fp32 | guard | NaN/inf rows dropped |", "|" + "---|" * 10]
        for name in VARIANTS:
            a = acc.get(name)
            if not a:
                continue
            if "error" in a:  # no score: a guard verdict here would be made up
                lines.append(f"| {name} | error: {a['error'][:150]} |" + " |" * 8)
                continue
            bins = a.get("per_lux_bin_map50", {})
            lines.append(f"| {name} | {_f(a.get('map50'), 4)} | {_f(a.get('map50_95'), 4)} | "
                         + " | ".join(_f(bins.get(b), 4) for b in ("dark", "dim", "bright",
                                                                    "sunlit"))
                         + f" | {_f(a.get('worst_drop'), 4)} | {_verdict(name, a)}"
                         f" | {a.get('nonfinite_rows_dropped')} |")
    md_out.parent.mkdir(parents=True, exist_ok=True)
    md_out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="phase", required=True)
    for name in ("main", "extra"):
        s = sub.add_parser(name)
        s.add_argument("--variants", type=Path, required=True, help="variant directory")
        s.add_argument("--out", type=Path, required=True)
        s.add_argument("--warmup-s", type=float, default=2.0)
        s.add_argument("--quick", action="store_true", help="seconds-long windows (smoke run)")
    m = sub.choices["main"]
    m.add_argument("--window-s", type=float, default=60.0)
    m.add_argument("--idle-s", type=float, default=60.0)
    m.add_argument("--idle-after-s", type=float, default=20.0)
    m.add_argument("--short-s", type=float, default=6.0)
    m.add_argument("--profiles", nargs="*", default=list(OTHER_PROFILES),
                   choices=OTHER_PROFILES, help="profiles besides max (short windows)")
    e = sub.choices["extra"]
    e.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    e.add_argument("--short-s", type=float, default=6.0)
    e.add_argument("--idle-s", type=float, default=15.0)
    e.add_argument("--e2e-s", type=float, default=8.0)
    e.add_argument("--eval-count", type=int, default=800)
    e.add_argument("--stress-per-kind", type=int, default=3)
    e.add_argument("--cpu-threads", type=int, default=0)
    r = sub.add_parser("report")
    r.add_argument("inputs", type=Path, nargs="+")
    r.add_argument("--json", type=Path, required=True)
    r.add_argument("--md", type=Path, required=True)
    args = p.parse_args(argv)
    if args.phase == "report":
        report(args.inputs, args.json, args.md)
        return 0
    if args.quick:
        for key, value in (("window_s", 2.0), ("idle_s", 2.0), ("idle_after_s", 1.0),
                           ("short_s", 1.0), ("e2e_s", 1.0), ("eval_count", 16),
                           ("stress_per_kind", 1), ("warmup_s", 0.5)):
            if hasattr(args, key):
                setattr(args, key, value)
    doc = phase_main(args) if args.phase == "main" else phase_extra(args)
    write(args.out, doc)
    print(f"[gpu_ort] wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
