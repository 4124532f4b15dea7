"""bench/gpu_ort.py's JSON (ONNX Runtime CUDA provider, NVML energy) as a benchmark result.

The GPU machine ran ``bench/gpu_ort.py`` (engine loop, batch 1, outputs read back, board
energy from NVML's total-energy counter, idle measured first in the same process); this
maps its rows onto :data:`~edge_trt_ros.reports.schema.SCHEMA` so the GPU and the CPU
results read, plot and ``--compare`` the same way. Nothing is re-measured: every figure is
gpu_ort.py's, and the result says so.

Rows taken: each variant at every fusion profile of the current fusion table (``max`` from
the ``main`` phase's 60 s windows, the other profiles from the first run's 6 s windows,
which the table has not changed since). The NHWC and no-CUDA-graph rows of the first run
are configurations the table no longer uses; they stay in gpu_ort.json. "Above idle"
subtracts the idle window measured at the start of the same phase, as gpu_ort.py does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edge_trt_ros.choices import FUSION_PROFILES
from edge_trt_ros.macs import count_macs
from edge_trt_ros.power.energy import efficiency
from edge_trt_ros.reports.benchmark import mark_frontier
from edge_trt_ros.reports.figures import spread
from edge_trt_ros.reports.schema import SCHEMA

VARIANT_PRECISION = {"fp32": "fp32", "fp16": "fp16", "int8-trt": "int8", "int8-ort": "int8"}
INT8_RECIPE = {"int8-trt": "qdq-s8s8-symmetric-perchannel (Q/DQ on conv inputs)",
               "int8-ort": "qdq-u8s8-perchannel+float:/model/stem/stem.0/+shared-concat-ranges"}


def _phase_of(data: dict[str, Any], key: str) -> dict[str, Any] | None:
    for phase in data.get("phases", []):
        if key in phase.get("results", {}):
            return phase
    return None


def _accuracy(acc: dict[str, Any], name: str) -> dict[str, Any] | None:
    row = acc.get(name)
    if not row or "error" in row:  # not measured there (the error is in gpu_ort.json)
        return None
    fp32 = name == "fp32"
    return {
        "map50": row.get("map50"), "map50_95": row.get("map50_95"),
        "per_lux_bin_map50": dict(row.get("per_lux_bin_map50") or {}),
        "map50_drop_vs_fp32": row.get("map50_drop_vs_fp32") or ({"overall": 0.0} if fp32
                                                                else None),
        "worst_drop": row.get("worst_drop", 0.0 if fp32 else None),
        "within_guard": row.get("within_guard", True if fp32 else None),
        "source": "imported", "frames": acc.get("frames"), "fusion_profile": "max",
        "how": f"bench/gpu_ort.py on the GPU: {acc.get('frames')} test frames, CUDA "
               "provider, profile max",
    }


def import_gpu_ort(path: str | os.PathLike[str], model_path: str | os.PathLike[str]
                   ) -> dict[str, Any]:
    """The benchmark result of a gpu_ort.json; MACs are counted on ``model_path`` (the
    model the GPU variants were made from)."""
    import json

    data = json.loads(Path(path).read_text())
    if data.get("benchmark") != "gpu_ort":
        raise ValueError(f"{path} is not bench/gpu_ort.py output (no \"benchmark\": "
                         "\"gpu_ort\")")
    results = data["results"]
    main = next(p for p in data["phases"] if p["phase"] == "main")
    env = main["environment"]
    board = env.get("board", {})
    macs = count_macs(Path(model_path))
    entries, skipped = [], []
    for name, precision in VARIANT_PRECISION.items():
        for profile in FUSION_PROFILES:
            key = f"{name}/{profile}"
            row = results.get(key)
            phase = _phase_of(data, key)
            if row is None or phase is None:
                skipped.append({"label": key, "reason": "not in gpu_ort.json"})
                continue
            if "error" in row:
                skipped.append({"label": key, "reason": row["error"][:300]})
                continue
            idle = phase["results"].get("idle_before", {}).get("power_w")
            frames, seconds, energy = row["frames"], row["seconds"], row["energy_j"]
            mj, fpw, tops = efficiency(energy, frames, macs)
            dyn = energy - idle * seconds if idle is not None else None
            dmj, dfpw, dtops = efficiency(dyn, frames, macs) if dyn is not None else \
                (None, None, None)
            lat = row.get("latency_ms", {})
            parts = row.get("fps_per_part") or []
            what = (f"{len(parts)} consecutive parts of one {seconds:g} s window"
                    if parts else "")
            entries.append({
                "label": key, "variant": name, "precision": precision,
                "fusion_profile": profile, "file": f"defect_yolo.{name}.onnx"
                if name != "fp32" else "defect_yolo.onnx", "sha256": None,
                "recipe": INT8_RECIPE.get(name, "base model" if name == "fp32" else
                                          "onnxconverter-common float16, measured headroom"),
                "served": None, "frames": frames, "seconds": seconds,
                "fps": row.get("fps"), "fps_spread": spread(parts, what, 1) if parts else None,
                "latency_ms": {"min": lat.get("min"), "p50": lat.get("p50"), "p90": None,
                               "p95": lat.get("p95"), "p99": lat.get("p99"),
                               "max": lat.get("max"), "mean": lat.get("mean")},
                "latency_histogram": None, "stages_ms": None,
                "power": {"mean_watts": row.get("power_w"), "watts_spread": None,
                          "energy_j": energy, "method": "counter", "estimated": False,
                          "scope": "gpu_board", "source": board.get("source", "nvml")},
                "efficiency": {
                    "mj_per_frame": _r(mj), "mj_per_frame_above_idle": _r(dmj),
                    "fps_per_watt": _r(fpw, 4), "fps_per_watt_above_idle": _r(dfpw, 4),
                    "tops_per_watt": _r(tops, 5), "tops_per_watt_above_idle": _r(dtops, 5),
                    "mj_per_frame_spread": None},
                "accuracy": _accuracy(results.get("accuracy", {}), name),
                "frontier": False,
                "settings": row.get("settings") | {"phase": phase["phase"],
                                                   "idle_w_subtracted": idle,
                                                   "clocks": row.get("clocks")},
            })
    idle_main = results.get("main:idle_before", {})
    idle_after = results.get("main:idle_after", {})
    result: dict[str, Any] = {
        "schema": SCHEMA, "kind": "engine",
        "title": "defect_yolo.onnx on onnxruntime CUDA provider (cuda:0), NVIDIA H200",
        "source": {
            "tool": "bench/gpu_ort.py", "imported_from": str(path),
            "note": "measured by bench/gpu_ort.py on the GPU machine (one NVIDIA H200), board "
                    "energy from NVML's total-energy counter; converted by `edge-trt "
                    "benchmark --import-gpu-ort`, nothing re-measured",
        },
        "environment": {
            "date": env.get("created"), "command": env.get("command"),
            "git_revision": None, "gpu": env.get("gpu"),
            "machine": env.get("machine", {}) | {"platform": env.get("platform"),
                                                  "gpu": env.get("gpu")},
            "hardware_profile": {"name": "x86_dgpu", "why": "GPU machine (gpu_ort.py)"},
            "clocks": {"nvml": {"readable": True, "driver": board.get("driver"),
                                "gpus": [{k: board.get(k) for k in (
                                    "name", "max_sm_mhz", "max_mem_mhz", "app_sm_mhz",
                                    "power_limit_w", "persistence_mode", "pstate")}]}},
            "power": {"sensor": "nvml", "source": board.get("source"), "scope": "gpu_board",
                      "estimated": False},
            "versions": {"onnxruntime": f"{env.get('onnxruntime')} ("
                         f"{(env.get('onnxruntime_build') or {}).get('package', '?')}, CUDA "
                         f"{(env.get('onnxruntime_build') or {}).get('cuda_version', '?')})",
                         **dict((env.get("cuda") or {}).items()),
                         "cudnn": env.get("cudnn_loaded_by_torch"), "numpy": env.get("numpy"),
                         "driver": board.get("driver")},
            "models": {"model": {"path": str(model_path), "sha256": None}},
            "phases": {p["phase"]: p.get("environment", {}).get("command")
                       for p in data["phases"]},
        },
        "config": {
            "backend": "onnxruntime", "device": "cuda:0",
            "backend_reason": "CUDA execution provider (onnxruntime-gpu), as bench/gpu_ort.py "
                              "ran it",
            "model": str(model_path), "macs_per_frame": macs,
            "profiles": list(FUSION_PROFILES), "window": f"{main.get('window_s', 60):g} s "
            f"(profile max), {main.get('short_s', 6):g} s (other profiles)",
            "window_s": main.get("window_s"), "repeats": 1, "warmup_frames": None,
            "frame": "a real test frame letterboxed once into the engine's device input",
            "pipeline": "engine.infer_device: batch 1, outputs read back to pinned host "
                        "memory every frame (no letterbox, no decode)",
            "latency_what": "one engine call on the GPU (input already on the device, "
                            "outputs read back; no letterbox, no decode)",
            "schedule": f"one window per entry: {main.get('window_s', 60):g} s at profile max "
                        f"(6 parts), {main.get('short_s', 6):g} s at the other profiles, after "
                        "gpu_ort.py's own warm-up",
            "order": "variants one after another (gpu_ort.py)",
        },
        "power": {
            "sensor": "nvml", "scope": "gpu_board", "source": board.get("source", "nvml"),
            "estimated": False,
            "idle": {"watts": idle_main.get("power_w"), "seconds": idle_main.get("seconds"),
                     "when": "main phase, before the first window (deep idle, SM "
                             f"{(idle_main.get('clocks') or {}).get('sm_mhz', {}).get('median')}"
                             " MHz); 6 s rows subtract their own phase's idle"},
            "idle_after": {"watts": idle_after.get("power_w"),
                           "seconds": idle_after.get("seconds"),
                           "when": "after the main phase (clocks still at maximum)"}
            if idle_after else None,
        },
        "entries": entries, "skipped": skipped, "frontier": [],
        "notes": [
            "Latency is the engine call alone (gpu_ort.py records no p90 and no per-frame "
            "histogram); the end-to-end rows of gpu_ort.md (CUDA letterbox, decode) are not "
            "part of this table.",
            "Board power includes the GPU's idle draw (79 W deep idle, ~124 W idling at full "
            "clocks): see 'mJ/frame above idle'.",
            "Commands of the phases on the GPU machine: " + "; ".join(
                f"{p['phase']}: `{p.get('environment', {}).get('command')}`"
                for p in data["phases"]) + " (profile max rows: main; balanced, conservative "
            "and none: run1).",
        ],
    }
    mark_frontier(result)
    return result


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)
