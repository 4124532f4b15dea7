#!/usr/bin/env python3
"""Camera frame -> network input: the CPU Letterbox against the GPU kernel.

What it measures for one frame (default 1920x1080 bgr8) and the shipped model's input
(384x512, read from the model), median and p95 over ``--runs`` timed runs after ``--warmup``:
* ``cpu``: :class:`edge_trt_ros.vision.letterbox.Letterbox` on the host (wall clock), with
  OpenCV's default thread count and with one thread (a busy robot CPU);
* ``cpu + tensor h2d``: the same plus copying the 2.4 MB float tensor to the GPU, which a
  GPU engine fed by the CPU path needs (wall clock incl. synchronize);
* ``gpu kernel``: the kernel alone, frame already on the device (CUDA events);
* ``gpu frame h2d``, ``gpu h2d + kernel``: the frame's copy from pinned memory, and copy +
  kernel (CUDA events);
* ``gpu call, pinned/pageable frame``: ``GpuLetterbox(view)`` + stream synchronize as the
  caller sees it (wall clock, Python overhead included), from pinned and pageable memory.
Also the max abs difference of the GPU tensor from the CPU tensor (the kernel is meant to be
bit-exact). Writes JSON (``results/bench/gpu_preprocess.json`` by default) with the machine,
GPU, library versions and command, and prints a Markdown table.

    PYTHONPATH=. python bench/gpu_preprocess.py --runs 500
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_trt_ros.gpu.letterbox import GpuLetterbox
from edge_trt_ros.gpu.runtime import (
    DeviceBuffer,
    Event,
    PinnedBuffer,
    Stream,
    copy_htod_async,
    cuda_unavailable_reason,
    cuda_versions,
    device_identity,
    device_memory_bandwidth_gbps,
)
from edge_trt_ros.variants.manifest import machine, now_iso
from edge_trt_ros.vision.image import ENCODINGS, ImageView, image_view
from edge_trt_ros.vision.letterbox import Letterbox

ROOT = Path(__file__).resolve().parents[1]

DEFAULT_INPUT_HW = (384, 512)


def stats(ms: list[float]) -> dict[str, float]:
    arr = np.asarray(ms)
    return {"median_ms": round(float(np.median(arr)), 4),
            "p95_ms": round(float(np.percentile(arr, 95)), 4),
            "min_ms": round(float(arr.min()), 4), "mean_ms": round(float(arr.mean()), 4),
            "runs": len(ms)}


def wall_ms(fn: Callable[[], Any], runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def event_ms(enqueue: Callable[[], Any], stream: Stream, runs: int, warmup: int) -> list[float]:
    """GPU time of the work ``enqueue`` queues, one run at a time (no overlap between runs)."""
    with Event() as start, Event() as end:
        for _ in range(warmup):
            enqueue()
        stream.synchronize()
        times = []
        for _ in range(runs):
            start.record(stream)
            enqueue()
            end.record(stream)
            end.synchronize()
            times.append(end.elapsed_ms(start))
    return times


def model_input_hw(model: Path) -> tuple[tuple[int, int], str]:
    try:
        from edge_trt_ros.model_info import read_model_info

        return read_model_info(model).input_hw, str(model)
    except Exception as exc:  # a model being retrained must not stop the benchmark
        print(f"note: could not read {model} ({exc}); using {DEFAULT_INPUT_HW}",
              file=sys.stderr)
        return DEFAULT_INPUT_HW, f"default {DEFAULT_INPUT_HW} ({exc})"


def markdown(result: dict[str, Any]) -> str:
    rows = ["| path | median ms | p95 ms | cpu median / this |", "|---|---|---|---|"]
    cpu = result["timings_ms"]["cpu"]["median_ms"]
    for name, s in result["timings_ms"].items():
        rows.append(f"| {name} | {s['median_ms']:.3f} | {s['p95_ms']:.3f} | "
                    f"{cpu / s['median_ms']:.1f}x |")
    acc = result["accuracy"]
    rows.append(f"\nGPU vs CPU tensor: max abs diff {acc['max_abs_diff']:.3g}, "
                f"identical values {acc['identical_fraction']:.6f}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=ROOT / "models" / "defect_yolo.onnx")
    p.add_argument("--width", type=int, default=1920)
    p.add_argument("--height", type=int, default=1080)
    p.add_argument("--encoding", choices=sorted(ENCODINGS), default="bgr8")
    p.add_argument("--runs", type=int, default=500)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--out", type=Path, default=ROOT / "results" / "bench" / "gpu_preprocess.json")
    args = p.parse_args(argv)
    reason = cuda_unavailable_reason()
    if reason is not None:
        print(f"gpu_preprocess needs a CUDA device: {reason}", file=sys.stderr)
        return 2

    input_hw, model_desc = model_input_hw(args.model)
    h, w = args.height, args.width
    channels = ENCODINGS[args.encoding][0]
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)  # content-independent cost
    runs, warmup = args.runs, args.warmup
    cv_threads = cv2.getNumThreads()
    timings: dict[str, list[float]] = {}

    with Stream() as stream, PinnedBuffer(frame.shape) as pinned, \
            GpuLetterbox(input_hw, stream=stream) as gl, \
            DeviceBuffer(gl.tensor_nbytes) as tensor_dev:
        pinned.array[:] = frame
        pageable = image_view(frame, args.encoding, h, w, w * channels)
        pinned_view: ImageView = image_view(pinned.array, args.encoding, h, w, w * channels)

        letterbox = Letterbox(input_hw)
        timings["cpu"] = wall_ms(lambda: letterbox(pageable), runs, warmup)
        cv2.setNumThreads(1)
        timings["cpu, 1 OpenCV thread"] = wall_ms(lambda: letterbox(pageable), runs, warmup)
        cv2.setNumThreads(cv_threads)

        def cpu_then_copy() -> None:
            tensor, _ = letterbox(pageable)
            copy_htod_async(tensor_dev, tensor, stream)
            stream.synchronize()

        timings["cpu + tensor h2d"] = wall_ms(cpu_then_copy, runs, warmup)

        gl.upload(pinned_view)
        timings["gpu kernel"] = event_ms(gl.launch, stream, runs, warmup)
        timings["gpu frame h2d (pinned)"] = event_ms(lambda: gl.upload(pinned_view), stream,
                                                     runs, warmup)
        timings["gpu h2d + kernel (pinned)"] = event_ms(lambda: gl(pinned_view), stream, runs,
                                                        warmup)

        def gpu_call(view: ImageView) -> Callable[[], None]:
            def run() -> None:
                gl(view)
                stream.synchronize()
            return run

        timings["gpu call + sync, pinned frame"] = wall_ms(gpu_call(pinned_view), runs, warmup)
        timings["gpu call + sync, pageable frame"] = wall_ms(gpu_call(pageable), runs, warmup)

        cpu_tensor, cpu_geometry = letterbox(pageable)
        _, gpu_geometry = gl(pageable)
        gpu_tensor = gl.download()
        diff = np.abs(gpu_tensor.astype(np.float64) - cpu_tensor)
        accuracy = {"max_abs_diff": float(diff.max()),
                    "identical_fraction": float(np.mean(gpu_tensor == cpu_tensor)),
                    "same_geometry": gpu_geometry == cpu_geometry}

    summary = {name: stats(t) for name, t in timings.items()}
    cpu = summary["cpu"]["median_ms"]
    speedup = {
        "cpu / gpu call (pinned)":
            round(cpu / summary["gpu call + sync, pinned frame"]["median_ms"], 2),
        "cpu + tensor h2d / gpu call (pinned)":
            round(summary["cpu + tensor h2d"]["median_ms"]
                  / summary["gpu call + sync, pinned frame"]["median_ms"], 2),
        "cpu / gpu h2d + kernel": round(cpu / summary["gpu h2d + kernel (pinned)"]["median_ms"],
                                        2),
        "cpu / gpu kernel": round(cpu / summary["gpu kernel"]["median_ms"], 2),
    }
    result = {
        "benchmark": "gpu_preprocess",
        "created": now_iso(),
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None
                                                        else sys.argv[1:])]),
        "machine": machine(),
        "platform": platform.platform(),
        "gpu": {"device": device_identity(),
                "memory_bandwidth_gbps": device_memory_bandwidth_gbps(), **cuda_versions()},
        "tools": {"numpy": np.__version__, "opencv": cv2.__version__},
        "opencv_threads": cv_threads,
        "model_input": model_desc,
        "input_hw": list(input_hw),
        "layout": "nchw",
        "frame": {"width": w, "height": h, "encoding": args.encoding,
                  "bytes": int(frame.nbytes)},
        "timed_runs": runs,
        "warmup_runs": warmup,
        "timings_ms": summary,
        "speedup": speedup,
        "accuracy": accuracy,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    print("\n" + ", ".join(f"{k}: {v}x" for k, v in speedup.items()))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
