"""Every variant x fusion profile the backend runs: speed, energy and accuracy in one run.

Each (variant file, fusion profile) is opened once as the node opens it
(:class:`~edge_trt_ros.engines.spec.EngineSpec` -> ``Detector.from_spec``) and driven with
``Detector.detect`` on one rendered 640x480 bgr8 camera frame, viewed the way the node views
a message: letterbox + inference + decode, the per-frame cost on the robot. After every
engine is loaded (so loading never lands in a window), the machine's idle power is measured
with nothing running; then the entries take turns, ``repeats`` rounds, each round starting
one entry later, so a noisy minute on a shared machine hits every entry alike. Every turn is
``warmup_frames`` untimed frames, then a window of ``window_s`` seconds (or ``frames``
frames) with per-frame latency and the energy meter running. Idle is measured again at the
end: the two baselines bracket the drift.

Energy comes from the best sensor on the machine (:func:`~edge_trt_ros.power.select.
open_power_sensor`): counter differences where it has one, else trapezoid integration of
20 Hz samples; an estimate is always flagged as such. Effective TOPS/W uses the MACs of the
base model for every variant (the same network; int8 does the same work in fewer joules).

Accuracy per entry is the variant manifest's (measured by ``edge-trt variants --evaluate``,
with its frame count and profile) or, with ``evaluate=N``, measured here on the first N
frames of the lux-stratified test split through the same detector at COCO thresholds.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_trt_ros.choices import AUTO, FUSION_PROFILES, PRECISIONS
from edge_trt_ros.dataset import iter_split, render_sample
from edge_trt_ros.detector import Detector
from edge_trt_ros.engines.registry import resolve_backend
from edge_trt_ros.engines.spec import EngineSpec
from edge_trt_ros.evaluation import EVAL_DECODE
from edge_trt_ros.macs import count_macs
from edge_trt_ros.power.energy import EnergyMeter, efficiency, measure_idle
from edge_trt_ros.power.reading import PowerSensor
from edge_trt_ros.power.sampler import PowerSampler
from edge_trt_ros.power.select import open_power_sensor
from edge_trt_ros.reports.environment import environment_record
from edge_trt_ros.reports.figures import (
    latency_histogram,
    latency_summary,
    pareto_frontier,
    spread,
)
from edge_trt_ros.reports.schema import SCHEMA
from edge_trt_ros.resources import DEFAULT_MODEL, find_resource
from edge_trt_ros.runtime.detector_runtime import RuntimeConfig
from edge_trt_ros.variants.catalog import Catalog, Variant
from edge_trt_ros.variants.evaluate import score, summarise
from edge_trt_ros.variants.manifest import load_manifest
from edge_trt_ros.vision.decode import DecodeParams
from edge_trt_ros.vision.image import ImageView, image_view

log = logging.getLogger("edge_trt_ros.reports.benchmark")

SAMPLE_PERIOD_S = 0.05  # power sampling while a window runs (sensors without a counter)
FRAME_SEED = 30_000_000  # the first test-split scene, also bench/node.py's frame
FRAME_WH = (640, 480)
NODE_DECODE = DecodeParams(0.25, 0.45, 100)  # config/detector.yaml's thresholds


@dataclass(frozen=True)
class BenchmarkConfig:
    """What to measure and how long; the defaults are a few minutes on a small CPU."""

    model_path: str
    variants_dir: str = ""  # "" = beside the shipped model, or per model in the cache
    backend: str = AUTO
    device: str = AUTO
    precisions: tuple[str, ...] = PRECISIONS
    profiles: tuple[str, ...] = FUSION_PROFILES
    variants: tuple[str, ...] = ()  # manifest names; () = every file the backend runs
    threads: int = 0  # intra-op threads of each engine (0 = the backend's default)
    window_s: float = 10.0
    frames: int = 0  # > 0: a fixed frame count per window instead of window_s
    warmup_frames: int = 20
    repeats: int = 3
    idle_s: float = 10.0
    evaluate: int = 0  # > 0: measure mAP@0.5 on this many test frames per entry
    hardware_profile: str = AUTO
    engine_cache_dir: str = ""

    def window_text(self) -> str:
        return f"{self.frames} frames" if self.frames > 0 else f"{self.window_s:g} s"


@dataclass
class Planned:
    """One (variant file, fusion profile) to measure."""

    variant: Variant
    profile: str
    spec: EngineSpec
    served: bool
    detector: Detector | None = None
    windows: list[Window] = field(default_factory=list)
    accuracy: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        return f"{self.variant.name}/{self.profile}"


@dataclass(frozen=True)
class Window:
    """One timed window of one entry."""

    frames: int
    seconds: float
    latency_ms: list[float]
    stages_ms: tuple[float, float, float]  # summed preprocess, inference, decode
    energy_j: float
    mean_watts: float | None
    window_s: float  # the power window (first to last sample)
    method: str


@dataclass(frozen=True)
class Progress:
    """What the runner reports after each step (the CLI draws a bar from it)."""

    done: int
    total: int
    stage: str  # "load" | "idle" | "window" | "evaluate"
    label: str
    detail: str = ""


ProgressFn = Callable[[Progress], None]


def bench_view() -> ImageView:
    """The camera frame every window runs on: a rendered defect scene as a bgr8 buffer."""
    rgb = render_sample(FRAME_SEED, width=FRAME_WH[0], height=FRAME_WH[1]).image
    data = np.ascontiguousarray(rgb[:, :, ::-1]).tobytes()
    return image_view(data, "bgr8", FRAME_WH[1], FRAME_WH[0], FRAME_WH[0] * 3)


def plan(config: BenchmarkConfig) -> tuple[list[Planned], list[dict[str, str]], Catalog,
                                           str, str, str]:
    """(entries, skipped with reasons, catalog, backend, device, why this backend)."""
    backend, device, why = resolve_backend(config.backend, config.device)
    shipped = shipped_model()
    runtime = RuntimeConfig(model_path=config.model_path, backend=backend, device=device,
                            engine_cache_dir=config.engine_cache_dir,
                            variants_dir=config.variants_dir, shipped_model=shipped)
    catalog = Catalog(config.model_path, runtime.catalog_dir())
    kind = device.partition(":")[0]
    served = catalog.available(backend, kind)
    entries: list[Planned] = []
    skipped: list[dict[str, str]] = []
    unknown = set(config.variants) - set(catalog.variants)
    if unknown:
        skipped += [{"label": name, "reason": f"no variant {name!r} in {catalog.directory} "
                     f"(there: {', '.join(catalog.variants)})"} for name in sorted(unknown)]
    for v in sorted(catalog.variants.values(), key=_variant_order):
        if config.variants and v.name not in config.variants:
            continue
        if v.precision not in config.precisions:
            continue
        if v.backends and backend not in v.backends:
            skipped.append({"label": v.name, "reason": f"made for {', '.join(v.backends)}, "
                            f"not {backend} (manifest)"})
            continue
        for profile in config.profiles:
            spec = EngineSpec(backend, str(v.path), precision=v.precision,
                              fusion_profile=profile, device=device,
                              intra_op_threads=config.threads,
                              cache_dir=str(runtime.cache_dir()),
                              calibration_sha256=v.calibration_key)
            pick = served.get(v.precision)
            entries.append(Planned(v, profile, spec, served=pick is not None
                                   and pick.name == v.name))
    return entries, skipped, catalog, backend, device, why


def shipped_model() -> str:
    try:
        return str(find_resource(DEFAULT_MODEL))
    except FileNotFoundError:
        return ""


def _variant_order(v: Variant) -> tuple[int, str]:
    return PRECISIONS.index(v.precision), v.name


def _window(det: Detector, view: ImageView, sensor: PowerSensor, macs: int | None,
            seconds: float, frames: int) -> Window:
    meter = EnergyMeter(sensor, macs=macs, window_s=None)
    latency: list[float] = []
    stages = [0.0, 0.0, 0.0]
    meter.reset()
    with PowerSampler(meter, SAMPLE_PERIOD_S):
        t_start = time.perf_counter()
        deadline = t_start + seconds
        while True:
            t0 = time.perf_counter()
            det.detect(view)
            t1 = time.perf_counter()
            latency.append((t1 - t0) * 1e3)
            meter.add_frames(1)
            timing = det.last_timing
            stages[0] += timing.preprocess_ms
            stages[1] += timing.inference_ms
            stages[2] += timing.decode_ms
            if (frames > 0 and len(latency) >= frames) or (frames <= 0 and t1 >= deadline):
                break
        elapsed = time.perf_counter() - t_start
        snap = meter.snapshot()  # inside: the window ends with the last frame
    return Window(len(latency), elapsed, latency, (stages[0], stages[1], stages[2]),
                  snap.energy_j, snap.mean_watts, snap.window_s, snap.method)


def accuracy_from_manifest(v: Variant, how: dict[str, Any] | None) -> dict[str, Any] | None:
    ev = v.evaluation
    if not ev or ev.get("map50") is None:
        return None
    how = how or {}
    return {
        "map50": ev.get("map50"), "map50_95": ev.get("map50_95"),
        "per_lux_bin_map50": dict(ev.get("per_lux_bin_map50") or {}),
        "map50_drop_vs_fp32": ev.get("map50_drop_vs_fp32") or ({"overall": 0.0}
                                                               if v.precision == "fp32"
                                                               else None),
        "worst_drop": ev.get("worst_drop", 0.0 if v.precision == "fp32" else None),
        "within_guard": ev.get("within_guard", True if v.precision == "fp32" else None),
        "source": "manifest", "frames": how.get("frames"),
        "fusion_profile": how.get("fusion_profile"),
        "how": (f"variants.json: {how.get('frames')} test frames, {how.get('backend')} on "
                f"{how.get('device')}, profile {how.get('fusion_profile')}, "
                f"{how.get('intra_op_threads')} threads")
        if how else "variants.json",
    }


def _evaluate(entries: Sequence[Planned], count: int, progress: ProgressFn | None) -> None:
    """mAP@0.5 of every entry on the same ``count`` test frames, fp32 first as reference."""
    samples = list(iter_split("test", count))
    references: dict[str, dict[str, Any]] = {}
    ordered = sorted(entries, key=lambda e: e.variant.precision != "fp32")
    for i, e in enumerate(ordered):
        det = e.detector
        if det is None:
            continue
        saved = det.params
        det.params = EVAL_DECODE
        try:
            result = score(det, samples)
        finally:
            det.params = saved
        reference = references.get(e.profile) or references.get("max")
        if e.variant.precision == "fp32":
            reference = None
        summary = summarise(result, reference)
        if e.variant.precision == "fp32":
            references[e.profile] = summary
            summary.update(map50_drop_vs_fp32={"overall": 0.0}, worst_drop=0.0,
                           within_guard=True)
        e.accuracy = {
            "map50": summary["map50"], "map50_95": summary["map50_95"],
            "per_lux_bin_map50": summary["per_lux_bin_map50"],
            "map50_drop_vs_fp32": summary.get("map50_drop_vs_fp32"),
            "worst_drop": summary.get("worst_drop"),
            "within_guard": summary.get("within_guard"),
            "source": "measured", "frames": len(samples), "fusion_profile": e.profile,
            "how": f"this run: first {len(samples)} lux-stratified test frames, COCO "
                   f"thresholds (confidence {EVAL_DECODE.confidence_threshold}, NMS IoU "
                   f"{EVAL_DECODE.nms_iou_threshold}), fp32 at the same profile as reference",
        }
        if progress:
            progress(Progress(i + 1, len(ordered), "evaluate", e.label,
                              f"mAP@0.5 {summary['map50']:.4f}"))


def _entry(e: Planned, idle_w: float | None, macs: int | None, estimated: bool,
           scope: str, source: str) -> dict[str, Any]:
    """The result row of one entry: repeats pooled, with their spread."""
    ws = e.windows
    frames = sum(w.frames for w in ws)
    seconds = sum(w.seconds for w in ws)
    energy = sum(w.energy_j for w in ws)
    power_s = sum(w.window_s for w in ws)
    latency = [x for w in ws for x in w.latency_ms]
    mj, fpw, tops = efficiency(energy, frames, macs)
    dyn = energy - idle_w * power_s if idle_w is not None else None
    dmj, dfpw, dtops = efficiency(dyn, frames, macs) if dyn is not None else (None,) * 3
    what = f"one window of {ws[0].frames if ws else 0}+ frames per repeat"
    return {
        "label": e.label, "variant": e.variant.name, "precision": e.variant.precision,
        "fusion_profile": e.profile, "file": str(e.variant.path), "sha256": e.variant.sha256,
        "recipe": e.variant.recipe, "served": e.served,
        "frames": frames, "seconds": round(seconds, 3),
        "fps": round(frames / seconds, 2) if seconds > 0 else None,
        "fps_spread": spread([w.frames / w.seconds for w in ws if w.seconds > 0], what, 2),
        "latency_ms": latency_summary(latency),
        "latency_histogram": latency_histogram(latency),
        "stages_ms": {name: round(sum(w.stages_ms[i] for w in ws) / frames, 3) if frames
                      else None for i, name in enumerate(("preprocess", "inference",
                                                          "decode"))},
        "power": {
            "mean_watts": round(energy / power_s, 3) if power_s > 0 else None,
            "watts_spread": spread([w.mean_watts for w in ws], what),
            "energy_j": round(energy, 6),  # µJ: mJ/frame is derived from it
            "method": "+".join(sorted({w.method for w in ws if w.method})),
            "estimated": estimated, "scope": scope, "source": source,
        },
        "efficiency": {
            "mj_per_frame": _round(mj), "mj_per_frame_above_idle": _round(dmj),
            "fps_per_watt": _round(fpw, 4), "fps_per_watt_above_idle": _round(dfpw, 4),
            "tops_per_watt": _round(tops, 5), "tops_per_watt_above_idle": _round(dtops, 5),
            "mj_per_frame_spread": spread(
                [1000 * w.energy_j / w.frames if w.frames else None for w in ws], what),
        },
        "accuracy": e.accuracy,
        "frontier": False,
        "settings": dict(e.detector.engine.info.settings) if e.detector else None,
    }


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def mark_frontier(result: dict[str, Any]) -> list[str]:
    """Set each entry's ``frontier`` flag and the result's ``frontier`` list (mJ/frame
    lower, mAP@0.5 higher)."""
    points = {e["label"]: (e["efficiency"].get("mj_per_frame"),
                           (e.get("accuracy") or {}).get("map50"))
              for e in result["entries"]}
    front = pareto_frontier(points)
    for e in result["entries"]:
        e["frontier"] = e["label"] in front
    result["frontier"] = front
    return front


def run_benchmark(config: BenchmarkConfig, progress: ProgressFn | None = None
                  ) -> dict[str, Any]:
    """Measure every planned entry; returns the result (schema :data:`SCHEMA`)."""
    entries, skipped, catalog, backend, device, why = plan(config)
    if not entries:
        raise ValueError("nothing to benchmark: " + ("; ".join(
            f"{s['label']}: {s['reason']}" for s in skipped) or "no variant matches the "
            "precisions/variants asked for"))
    manifest_how = None
    if catalog.manifest_path.is_file():
        manifest_how = (load_manifest(catalog.manifest_path).get("evaluation") or {}).get("how")
    models: dict[str, str | os.PathLike[str]] = {"model": config.model_path}
    for e in entries:  # every variant file's hash, once
        models[e.variant.name] = str(e.variant.path)
    environment = environment_record(models, config.hardware_profile)  # at the start: date
    macs = count_macs(config.model_path)
    sensor, detection = open_power_sensor(config.hardware_profile)
    total = len(entries) + 2 + len(entries) * config.repeats
    done = 0

    def step(stage: str, label: str, detail: str = "") -> None:
        nonlocal done
        done += 1
        if progress:
            progress(Progress(done, total, stage, label, detail))

    view = bench_view()
    try:
        loaded: list[Planned] = []
        for e in entries:
            t0 = time.perf_counter()
            try:
                e.detector = Detector.from_spec(e.spec, NODE_DECODE)
                e.detector.detect(view)  # first run: allocations, lazy init
            except Exception as exc:  # one engine that cannot run must not stop the others
                log.warning("%s cannot run on %s %s and is left out: %s", e.label, backend,
                            device, exc)
                skipped.append({"label": e.label, "reason": f"{type(exc).__name__}: {exc}"})
                total -= config.repeats
            else:
                loaded.append(e)
            step("load", e.label, f"{(time.perf_counter() - t0) * 1e3:.0f} ms")
        if not loaded:
            raise ValueError("no engine could be opened: " + "; ".join(
                f"{s['label']}: {s['reason']}" for s in skipped))
        idle_w = measure_idle(sensor, config.idle_s, SAMPLE_PERIOD_S) if config.idle_s > 0 \
            else None
        step("idle", "idle before", f"{idle_w:.2f} W" if idle_w is not None else "skipped")
        for r in range(config.repeats):
            order = loaded[r % len(loaded):] + loaded[:r % len(loaded)]
            for e in order:
                assert e.detector is not None
                for _ in range(config.warmup_frames):
                    e.detector.detect(view)
                w = _window(e.detector, view, sensor, macs, config.window_s, config.frames)
                e.windows.append(w)
                step("window", e.label, f"repeat {r + 1}: {w.frames / w.seconds:.1f} fps, "
                     f"{(w.mean_watts or float('nan')):.1f} W")
        idle_after = measure_idle(sensor, config.idle_s, SAMPLE_PERIOD_S) \
            if config.idle_s > 0 else None
        step("idle", "idle after", f"{idle_after:.2f} W" if idle_after is not None else "")
        if config.evaluate > 0:
            _evaluate(loaded, config.evaluate, progress)
        else:
            for e in loaded:
                e.accuracy = accuracy_from_manifest(e.variant, manifest_how)
        result = _result(config, loaded, skipped, catalog, backend, device, why, macs,
                         sensor, detection, idle_w, idle_after, environment)
    finally:
        for e in entries:
            if e.detector is not None:
                e.detector.release()
                e.detector = None
        sensor.close()
    return result


def _result(config: BenchmarkConfig, loaded: list[Planned], skipped: list[dict[str, str]],
            catalog: Catalog, backend: str, device: str, why: str, macs: int | None,
            sensor: Any, detection: Any, idle_w: float | None, idle_after: float | None,
            environment: dict[str, Any]) -> dict[str, Any]:
    estimated = bool(sensor.estimated)
    notes = []
    if estimated:
        notes.append("Power is ESTIMATED from the hardware profile and utilisation (no power "
                     f"sensor: {'; '.join(f'{n}: {r}' for n, r in detection.skipped)}): it "
                     "ranks variants by how busy they keep the machine, it is not a "
                     "measurement. Utilisation is the whole machine's: other processes' load "
                     "counts too (compare the idle baselines).")
    if not any(e.accuracy for e in loaded):
        notes.append(f"No accuracy figures: {catalog.manifest_path} has no evaluation; run "
                     "`edge-trt benchmark --evaluate 200` or `" + catalog.build_command() + "`.")
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "kind": "engine",
        "title": f"{Path(config.model_path).name} on {backend} ({device})",
        "source": {"tool": "edge-trt benchmark", "imported_from": None, "note": None},
        "environment": environment,
        "config": {
            "backend": backend, "device": device, "backend_reason": why,
            "model": config.model_path, "variants_dir": str(catalog.directory),
            "macs_per_frame": macs, "precisions": list(config.precisions),
            "profiles": list(config.profiles), "variants": list(config.variants),
            "intra_op_threads": config.threads, "window": config.window_text(),
            "window_s": config.window_s, "frames_per_window": config.frames,
            "warmup_frames": config.warmup_frames, "repeats": config.repeats,
            "idle_s": config.idle_s, "evaluate_frames": config.evaluate,
            "frame": f"{FRAME_WH[0]}x{FRAME_WH[1]} bgr8, rendered scene seed {FRAME_SEED}",
            "pipeline": "Detector.detect: letterbox + inference + decode, one frame at a time",
            "latency_what": "one Detector.detect call (letterbox + inference + decode)",
            "decode": {"confidence_threshold": NODE_DECODE.confidence_threshold,
                       "nms_iou_threshold": NODE_DECODE.nms_iou_threshold,
                       "max_detections": NODE_DECODE.max_detections},
            "schedule": f"every entry {config.warmup_frames} warm-up frames, then "
                        f"{config.window_text()}, {config.repeats} repeat(s)",
            "order": "entries interleaved: each repeat runs every entry once, starting one "
                     "entry later than the previous repeat",
        },
        "power": {
            "sensor": sensor.name, "scope": sensor.scope, "source": sensor.source,
            "estimated": estimated, "skipped": dict(detection.skipped),
            "sample_period_s": SAMPLE_PERIOD_S,
            "idle": {"watts": _round(idle_w), "seconds": config.idle_s,
                     "when": "after every engine was loaded, before the first window"}
            if idle_w is not None else None,
            "idle_after": {"watts": _round(idle_after), "seconds": config.idle_s,
                           "when": "after the last window"} if idle_after is not None
            else None,
            "events": [{"from": f, "to": t, "reason": why_}
                       for _, f, t, why_ in getattr(sensor, "events", [])],
        },
        "entries": [_entry(e, idle_w, macs, estimated, sensor.scope, sensor.source)
                    for e in loaded],
        "skipped": skipped,
        "frontier": [],
        "notes": notes,
    }
    mark_frontier(result)
    return result
