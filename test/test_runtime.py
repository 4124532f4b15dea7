"""The ROS-free run time: mailbox, sequencer, catalog, selection, switcher and workers.

Real ONNX Runtime sessions on the tiny generated detector and its real variant files; the
threads are real threads.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from onnx_models import fails_on_bright_frames_model, names_metadata, yolov8_output

from edge_trt_ros.detector import Detector
from edge_trt_ros.engines.spec import EngineSpec
from edge_trt_ros.errors import EngineError, ManifestError
from edge_trt_ros.runtime.affinity import allowed_cores, worker_cores
from edge_trt_ros.runtime.counters import FAILED, REJECTED, REPLACED, FrameCounters
from edge_trt_ros.runtime.detector_runtime import DetectorRuntime, RuntimeConfig
from edge_trt_ros.runtime.mailbox import Frame, Mailbox, Sequencer
from edge_trt_ros.runtime.ready import parse_keep_ready
from edge_trt_ros.runtime.selection import SwitchRefused, plan_engine
from edge_trt_ros.runtime.stats import FrameWindow
from edge_trt_ros.runtime.switcher import EngineSwitcher
from edge_trt_ros.runtime.workers import FrameResult, WorkerPool
from edge_trt_ros.variants.build import build_variants
from edge_trt_ros.variants.calibration import CalibrationSpec
from edge_trt_ros.variants.catalog import Catalog
from edge_trt_ros.variants.manifest import load_manifest, save
from edge_trt_ros.vision.decode import DecodeParams
from edge_trt_ros.vision.image import ImageView, rgb_view

DECODE = DecodeParams(0.25, 0.45, 100)


@pytest.fixture(scope="module")
def variants(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny detector's real variant files (fp32 in place, fp16, both int8 recipes)."""
    out = tmp_path_factory.mktemp("variants")
    build_variants(tiny, out, calibration=CalibrationSpec(count=4, augment=None),
                   copy_base=False)
    return out


def with_evaluation(src: Path, dst: Path, drops: dict[str, dict[str, float]]) -> Path:
    """A copy of the variant set whose manifest records the given mAP@0.5 drops."""
    shutil.copytree(src, dst)
    manifest = load_manifest(dst)
    manifest["base_model"]["path"] = str(Path(src, manifest["base_model"]["path"]).resolve())
    fp32 = manifest["variants"]["fp32"]
    fp32["file"] = str(Path(src, fp32["file"]).resolve())
    fp32["evaluation"] = {"map50": 0.98, "per_lux_bin_map50": {"dark": 0.97, "sunlit": 0.99}}
    for name, d in drops.items():
        manifest["variants"][name]["evaluation"] = {
            "map50": 0.98 - d["overall"], "map50_drop_vs_fp32": d,
            "per_lux_bin_map50": {"dark": 0.97 - d["dark"], "sunlit": 0.99 - d["sunlit"]}}
    save(manifest)
    return dst


# --- mailbox and sequencer -------------------------------------------------------------------

def test_mailbox_keeps_only_the_newest_frame_and_says_what_it_replaced() -> None:
    box = Mailbox()
    a, b, c = (Frame(p, i) for i, p in enumerate("abc"))
    assert box.put(a) is None
    assert box.put(b) is a
    assert box.put(c) is b
    assert box.take(0) is c and box.take(0.01) is None
    assert [a.seq, b.seq, c.seq] == [0, 1, 2]


def test_a_burst_reaching_idle_workers_is_not_a_backlog() -> None:
    box = Mailbox()
    got: list[Frame | None] = []
    workers = [threading.Thread(target=lambda: got.append(box.take(5.0))) for _ in range(2)]
    for w in workers:
        w.start()
    while box.waiting < 2:  # both workers are inside take()
        time.sleep(0.001)
    a, b, c = (Frame(p, i) for i, p in enumerate("abc"))
    assert box.put(a) is None and box.put(b) is None  # one for each idle worker
    assert box.put(c) is None  # waits for whichever worker is free first
    for w in workers:
        w.join(1.0)
    assert sorted(f.payload for f in got if f) == ["a", "b"]
    assert box.take(0) is c


def test_mailbox_close_wakes_a_waiting_worker() -> None:
    box = Mailbox()
    got: list[object] = []
    t = threading.Thread(target=lambda: got.append(box.take(5.0)))
    t.start()
    time.sleep(0.05)
    box.close()
    t.join(1.0)
    assert not t.is_alive() and got == [None]


def test_sequencer_releases_results_in_arrival_order() -> None:
    seq: Sequencer[str] = Sequencer()
    out: list[str] = []
    for i in (3, 4, 5):
        seq.begin(i)
    seq.done(5, "five", out.append)
    seq.done(4, None, out.append)  # a dropped frame releases nothing but unblocks the rest
    assert out == []
    seq.done(3, "three", out.append)
    assert out == ["three", "five"]


# --- catalog and selection -------------------------------------------------------------------

def test_catalog_picks_the_recipe_each_runtime_runs(tiny: Path, variants: Path) -> None:
    catalog = Catalog(tiny, variants)
    assert catalog.problems == []
    assert catalog.pick("fp32", "onnxruntime").path.resolve() == tiny.resolve()
    assert catalog.pick("int8", "onnxruntime", "cpu").name == "int8-ort"  # u8s8
    assert catalog.pick("int8", "tensorrt", "cuda").name == "int8-trt"  # s8s8
    assert catalog.pick("fp16", "tensorrt", "cuda").name == "fp16"
    assert set(catalog.available("onnxruntime", "cpu")) == {"fp32", "fp16", "int8"}


def test_catalog_refuses_files_that_do_not_match_the_manifest(
    tiny: Path, variants: Path, tmp_path: Path
) -> None:
    copy = with_evaluation(variants, tmp_path / "v", {})
    (copy / "tiny.int8-ort.onnx").write_bytes(b"tampered")
    catalog = Catalog(tiny, copy)
    assert "int8-ort" not in catalog.variants
    assert any("int8-ort" in p and "sha256" in p for p in catalog.problems)
    with pytest.raises(ManifestError, match="edge-trt variants"):
        catalog.pick("int8", "onnxruntime", "cpu")


def test_a_model_without_variants_has_fp32_makes_fp16_and_refuses_int8(
    tiny: Path, tmp_path: Path
) -> None:
    catalog = Catalog(tiny, tmp_path / "none_yet")
    assert list(catalog.variants) == ["fp32"]
    with pytest.raises(ManifestError, match="int8 needs calibration images.*edge-trt variants"):
        catalog.pick("int8", "onnxruntime", "cpu")
    base = EngineSpec("onnxruntime", str(tiny))
    plan = plan_engine(catalog, base, "fp16", "max", hardware_fusion_default="max",
                       max_accuracy_drop=0.005)
    assert plan.variant.precision == "fp16" and plan.variant.path.is_file()
    assert any("not measured" in n for n in plan.notes)
    assert "fp16" in Catalog(tiny, tmp_path / "none_yet").variants  # recorded in a manifest


def test_the_accuracy_guard_refuses_unless_forced(
    tiny: Path, variants: Path, tmp_path: Path
) -> None:
    copy = with_evaluation(variants, tmp_path / "v", {
        "int8-ort": {"overall": 0.002, "dark": 0.0075, "sunlit": 0.001},
        "fp16": {"overall": 0.0, "dark": 0.001, "sunlit": 0.0}})
    catalog = Catalog(tiny, copy)
    base = EngineSpec("onnxruntime", str(tiny))
    kw = {"hardware_fusion_default": "balanced", "max_accuracy_drop": 0.005}
    with pytest.raises(SwitchRefused, match=r"int8-ort fails the accuracy guard.*dark 0\.75"):
        plan_engine(catalog, base, "int8", "max", **kw)
    forced = plan_engine(catalog, base, "int8", "max", force=True, **kw)
    assert forced.forced and "FORCED" in forced.notes[0]
    ok = plan_engine(catalog, base, "fp16", "auto", **kw)
    assert not ok.forced and ok.spec.fusion_profile == "balanced"  # auto: hardware default
    assert ok.spec.precision == "fp16" and ok.spec.model_path == str(catalog.variants["fp16"].path)
    with pytest.raises(SwitchRefused, match="fusion profile"):
        plan_engine(catalog, base, "fp32", "fastest", **kw)


# --- switcher --------------------------------------------------------------------------------

class Opened:
    """Counts the detectors a switcher opens and releases (real engines underneath)."""

    def __init__(self) -> None:
        self.opened: list[Detector] = []
        self.released = 0
        self.fail = False

    def __call__(self, spec: EngineSpec, decode: DecodeParams) -> Detector:
        if self.fail:
            raise EngineError("build failed (injected)")
        det = Detector.from_spec(spec, decode)
        real_release = det.release

        def release() -> None:
            self.released += 1
            real_release()

        det.release = release  # type: ignore[method-assign]
        self.opened.append(det)
        return det


def test_a_switch_waits_for_the_frame_running_on_the_old_engine(
    tiny: Path, variants: Path
) -> None:
    catalog, opened = Catalog(tiny, variants), Opened()
    fp32, int8 = catalog.pick("fp32", "onnxruntime"), catalog.pick("int8", "onnxruntime")
    switcher = EngineSwitcher(opened, workers=1, decode=DECODE)
    switcher.start(EngineSpec("onnxruntime", str(fp32.path), intra_op_threads=1), fp32)
    frame = np.zeros((64, 96, 3), np.uint8)
    with switcher.lease(0) as (engine, detector):
        switcher.switch(EngineSpec("onnxruntime", str(int8.path), "int8",
                                   intra_op_threads=1), int8, reason="test")
        assert switcher.active.variant.name == "int8-ort"
        assert opened.released == 0  # the leased engine is still running a frame
        detector.detect(frame)
        assert engine.variant.name == "fp32"
    assert opened.released == 1
    switcher.close()
    assert opened.released == 2


def test_a_failed_switch_keeps_the_running_engine(tiny: Path, variants: Path) -> None:
    catalog, opened = Catalog(tiny, variants), Opened()
    fp32 = catalog.pick("fp32", "onnxruntime")
    switcher = EngineSwitcher(opened, workers=2, decode=DECODE)
    switcher.start(EngineSpec("onnxruntime", str(fp32.path), intra_op_threads=1), fp32)
    before = switcher.active
    opened.fail = True
    with pytest.raises(EngineError, match="injected"):
        switcher.switch(EngineSpec("onnxruntime", str(fp32.path), fusion_profile="none"),
                        fp32, reason="test")
    assert switcher.active is before and opened.released == 0
    assert len(before.detectors) == 2  # one detector per worker
    switcher.close()


def test_cpu_workers_share_one_engine_and_run_frames_at_once(
    tiny: Path, variants: Path
) -> None:
    catalog, opened = Catalog(tiny, variants), Opened()
    fp32, int8 = catalog.pick("fp32", "onnxruntime"), catalog.pick("int8", "onnxruntime")
    switcher = EngineSwitcher(opened, workers=2, decode=DECODE)
    switcher.start(EngineSpec("onnxruntime", str(fp32.path), intra_op_threads=1), fp32)
    a, b = switcher.active.detectors
    assert len(opened.opened) == 1 and a.engine is b.engine  # one load, one warm-up
    h, w = a.info.input_hw
    tensors = [np.random.default_rng(i).random((1, 3, h, w), np.float32) for i in range(2)]
    alone = [a.engine.infer(t)[0].copy() for t in tensors]
    with ThreadPoolExecutor(2) as pool:  # both workers on the one session at once
        together = list(pool.map(lambda d, t: d.engine.infer(t)[0], (a, b), tensors))
    for x, y in zip(alone, together, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5)
    assert not np.allclose(alone[0], alone[1])  # distinct inputs gave distinct outputs
    frame = np.zeros((64, 96, 3), np.uint8)
    b.detect(frame)
    switcher.switch(EngineSpec("onnxruntime", str(int8.path), "int8", intra_op_threads=1),
                    int8, reason="test")
    assert len(opened.opened) == 2 and opened.released == 1  # the fp32 engine, freed once
    with pytest.raises(EngineError, match="released"):
        b.detect(frame)  # the sibling ran on the engine that was freed
    switcher.close()
    assert opened.released == 2


def test_thresholds_reach_every_detector_and_later_engines(tiny: Path, variants: Path) -> None:
    catalog, opened = Catalog(tiny, variants), Opened()
    fp32 = catalog.pick("fp32", "onnxruntime")
    switcher = EngineSwitcher(opened, workers=2, decode=DECODE)
    switcher.start(EngineSpec("onnxruntime", str(fp32.path), intra_op_threads=1), fp32)
    switcher.update_decode(confidence_threshold=0.9)
    assert {d.params.confidence_threshold for d in switcher.active.detectors} == {0.9}
    switcher.switch(EngineSpec("onnxruntime", str(fp32.path), fusion_profile="balanced",
                               intra_op_threads=1), fp32, reason="test")
    assert {d.params.confidence_threshold for d in switcher.active.detectors} == {0.9}
    switcher.close()


def test_an_engine_kept_ready_is_swapped_in_without_opening_and_kept_after(
        tiny: Path, variants: Path) -> None:
    catalog, opened = Catalog(tiny, variants), Opened()
    fp32, int8 = catalog.pick("fp32", "onnxruntime"), catalog.pick("int8", "onnxruntime")
    fp32_spec = EngineSpec("onnxruntime", str(fp32.path), intra_op_threads=1)
    int8_spec = EngineSpec("onnxruntime", str(int8.path), "int8", intra_op_threads=1)
    switcher = EngineSwitcher(opened, workers=2, decode=DECODE)
    switcher.start(fp32_spec, fp32)
    switcher.keep_ready(int8_spec, int8)
    switcher.keep_ready(int8_spec, int8)  # already kept: nothing more opened
    assert len(opened.opened) == 2 and switcher.kept == (int8_spec,)
    kept = opened.opened[1]
    switcher.update_decode(confidence_threshold=0.8)  # while int8 waits, not active
    switcher.switch(int8_spec, int8, reason="test")
    assert len(opened.opened) == 2  # swapped in: nothing opened
    assert switcher.active.first is kept and switcher.active.reason == "test"
    assert {d.params.confidence_threshold for d in switcher.active.detectors} == {0.8}
    assert opened.released == 1  # the fp32 engine, not kept, is released
    with switcher.lease(0) as (_, detector):  # a frame still running on int8...
        switcher.switch(fp32_spec, fp32, reason="back")  # ...while it is switched away
        detector.detect(np.zeros((64, 96, 3), np.uint8))
    assert len(opened.opened) == 3 and opened.released == 1  # int8 stays open, kept
    switcher.switch(int8_spec, int8, reason="again")
    assert len(opened.opened) == 3 and switcher.active.first is kept
    switcher.switch(fp32_spec, fp32, reason="back")  # opens fp32 once more; int8 kept
    switcher.switch(fp32_spec, fp32, reason="same")  # the active spec: nothing opened
    assert len(opened.opened) == 4 and switcher.active.reason == "same"
    switcher.switch(int8_spec, int8, reason="again")
    with switcher.lease(1):  # a frame on kept int8...
        switcher.switch(fp32_spec, fp32, reason="back")  # ...now inactive
        assert len(opened.opened) == 5 and opened.released == 3
        switcher.close()  # fp32 released now, int8 only after that frame
        assert opened.released == 4
    assert opened.released == 5 == len(opened.opened)
    with pytest.raises(EngineError, match="no engine"):
        _ = switcher.active


def test_runtime_keeps_the_named_engines_ready_and_refuses_bad_entries(
        tiny: Path, variants: Path, tmp_path: Path) -> None:
    def runtime(keep: tuple[str, ...], variants_dir: Path = variants) -> DetectorRuntime:
        config = RuntimeConfig(model_path=str(tiny), backend="onnxruntime", device="cpu",
                               variants_dir=str(variants_dir), intra_op_threads=1,
                               keep_ready=keep)
        return DetectorRuntime(config, lambda p: rgb_view(p), lambda r: None, time.time_ns)

    r = runtime(("int8/balanced", "fp16/none", "int8/balanced", ""))
    try:
        assert r.ready_labels() == ["fp16/none", "int8/balanced"]
        ok = r.request("int8", "balanced", reason="test")
        assert ok.success and "kept ready" in ok.message, ok.message
        assert r.active.variant.name == "int8-ort"
        ok = r.request("fp32", "max", reason="test")
        assert ok.success and "kept ready" not in ok.message
    finally:
        r.close()
    with pytest.raises(SwitchRefused, match="'int8/fast' is not precision/fusion_profile"):
        runtime(("int8/fast",))
    guarded = with_evaluation(variants, tmp_path / "guarded", {
        "fp16": {"overall": 0.001, "dark": 0.001, "sunlit": 0.001},
        "int8-ort": {"overall": 0.004, "dark": 0.03, "sunlit": 0.0},
        "int8-trt": {"overall": 0.004, "dark": 0.03, "sunlit": 0.0}})
    with pytest.raises(SwitchRefused, match="keep_ready int8/max: .*dark"):
        runtime(("int8/max",), guarded)  # named: configure fails, saying why
    r = runtime(("all",), guarded)  # all: every pair that may run, the others listed
    try:
        assert r.ready_labels() == sorted(f"{p}/{f}" for p in ("fp32", "fp16")
                                          for f in ("max", "balanced", "conservative", "none"))
    finally:
        r.close()


def test_keep_ready_entries_parse_or_say_what_is_wrong() -> None:
    assert parse_keep_ready([""]) == () and parse_keep_ready([]) == ()
    assert parse_keep_ready(["all"]) is None
    assert parse_keep_ready([" int8/max", "fp16/auto", "int8/max"]) == (
        ("int8", "max"), ("fp16", "auto"))
    for bad, why in ((["all", "int8/max"], "give it alone"), (["int8"], "'int8' is not"),
                     (["int4/max"], "'int4/max'"), (["int8/max/x"], "'int8/max/x'")):
        with pytest.raises(ValueError, match=why):
            parse_keep_ready(bad)


# --- workers ---------------------------------------------------------------------------------

def _pool(model: Path, variants: Path, emit, workers: int = 1):  # type: ignore[no-untyped-def]
    catalog = Catalog(model, variants)
    fp32 = catalog.pick("fp32", "onnxruntime")
    switcher = EngineSwitcher(Opened(), workers=workers, decode=DECODE)
    switcher.start(EngineSpec("onnxruntime", str(fp32.path), intra_op_threads=1), fp32)

    def convert(payload: object) -> ImageView:
        if isinstance(payload, str):
            from edge_trt_ros.errors import ImageFormatError
            raise ImageFormatError(payload)
        assert isinstance(payload, np.ndarray)
        return rgb_view(payload)

    counters = FrameCounters(5.0)
    pool = WorkerPool(switcher, convert, emit, counters, FrameWindow(5.0), time.time_ns)
    return pool, switcher, counters


def test_the_worker_takes_the_newest_frame_and_counts_the_replaced_ones(
    tiny: Path, variants: Path
) -> None:
    done: list[int] = []
    gate = threading.Event()

    def emit(result: FrameResult) -> None:
        gate.wait(5.0)  # hold the worker on the first frame while three more arrive
        done.append(result.frame.stamp_ns)

    pool, switcher, counters = _pool(tiny, variants, emit)
    pool.start()
    frame = np.zeros((64, 96, 3), np.uint8)
    pool.submit(Frame(frame, 1))
    time.sleep(0.3)  # the worker is now inside emit() for frame 1
    for stamp in (2, 3, 4):
        pool.submit(Frame(frame, stamp))
    gate.set()
    deadline = time.monotonic() + 5
    while len(done) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    pool.stop()
    switcher.close()
    snap = counters.snapshot()
    assert done == [1, 4]  # the newest frame, never the stale ones
    assert snap.received == 4 and snap.processed == 2 and snap.dropped[REPLACED] == 2


def test_bad_frames_and_engine_failures_are_counted_and_the_pool_goes_on(
    tmp_path: Path
) -> None:
    model = fails_on_bright_frames_model(
        tmp_path / "fails.onnx", {"output0": yolov8_output([(10, 10, 4, 4)], [[0.9, 0.0]])},
        (64, 96), names_metadata(["scratch", "crack"], (64, 96)))
    done: list[int] = []
    pool, switcher, counters = _pool(model, tmp_path / "variants",
                                     lambda r: done.append(r.frame.stamp_ns), workers=2)
    pool.start()
    good = np.zeros((64, 96, 3), np.uint8)

    def send_and_wait(payload: object, stamp: int) -> None:
        pool.submit(Frame(payload, stamp))
        deadline = time.monotonic() + 5
        while counters.snapshot().received > (counters.snapshot().processed
                                              + counters.snapshot().dropped_total) \
                and time.monotonic() < deadline:
            time.sleep(0.005)

    send_and_wait(good, 1)
    send_and_wait("unsupported encoding 'yuv422'", 2)
    send_and_wait(np.full((64, 96, 3), 255, np.uint8), 3)  # the engine fails on this one
    send_and_wait(good, 4)
    pool.stop()
    switcher.close()
    snap = counters.snapshot()
    assert done == [1, 4]
    assert snap.dropped[REJECTED] == 1 and snap.dropped[FAILED] == 1
    assert snap.recent[REJECTED] == 1 and "yuv422" in snap.last_reason[REJECTED]
    assert "Gather" in snap.last_reason[FAILED]  # ONNX Runtime's own reason is kept


def test_results_leave_in_arrival_order_with_two_workers(tiny: Path, variants: Path) -> None:
    done: list[int] = []
    pool, switcher, counters = _pool(tiny, variants, lambda r: done.append(r.frame.stamp_ns),
                                     workers=2)
    pool.start()
    frame = np.zeros((64, 96, 3), np.uint8)
    for stamp in range(1, 201):
        pool.submit(Frame(frame, stamp))
        time.sleep(0.001)
    deadline = time.monotonic() + 10
    while counters.snapshot().processed + counters.snapshot().dropped_total < 200 \
            and time.monotonic() < deadline:
        time.sleep(0.01)
    pool.stop()
    switcher.close()
    assert done == sorted(done) and len(done) == counters.snapshot().processed > 0


def test_worker_cores_give_each_worker_its_own_run_of_the_allowed_cores() -> None:
    assert worker_cores(2, frozenset({0, 1})) == (frozenset({0}), frozenset({1}))
    assert worker_cores(2, frozenset({0, 1, 2, 3})) == (frozenset({0, 1}), frozenset({2, 3}))
    # a taskset/cgroup mask with holes; the core left over stays free to everyone
    assert worker_cores(2, frozenset({2, 5, 7, 9, 11})) == (frozenset({2, 5}),
                                                            frozenset({7, 9}))
    assert worker_cores(1, frozenset({0, 1})) == ()  # nobody to collide with
    assert worker_cores(3, frozenset({0, 1})) == ()  # they must share cores anyway
    assert worker_cores(2, frozenset()) == ()  # the OS cannot say


def _thread_cores(thread: threading.Thread) -> frozenset[int]:
    assert thread.native_id is not None
    return frozenset(os.sched_getaffinity(thread.native_id))


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity here")
@pytest.mark.parametrize("pin", [True, False])
def test_cpu_workers_run_on_the_cores_the_runtime_gave_them(
    tiny: Path, variants: Path, pin: bool
) -> None:
    """Pinned where the process may use a core per worker, else (or with pin_workers off)
    on the process's own cores; the main thread is never narrowed."""
    config = RuntimeConfig(model_path=str(tiny), backend="onnxruntime", device="cpu",
                           variants_dir=str(variants), workers=2, intra_op_threads=1,
                           pin_workers=pin)
    process = allowed_cores()
    runtime = DetectorRuntime(config, lambda p: rgb_view(p), lambda r: None, time.time_ns)
    try:
        expected = worker_cores(2, process) if pin else ()
        assert runtime.cores == expected
        assert (len(expected) == 2) == (pin and len(process) >= 2)
        runtime.start()
        deadline = time.monotonic() + 10
        while runtime.pool.mailbox.waiting < 2 and time.monotonic() < deadline:
            time.sleep(0.01)  # both workers past their start, waiting for a frame
        threads = runtime.pool._threads
        assert len(threads) == 2
        for i, thread in enumerate(threads):
            assert _thread_cores(thread) == (expected[i] if expected else process)
        assert frozenset(os.sched_getaffinity(0)) == process
    finally:
        runtime.close()


# --- the runtime facade ----------------------------------------------------------------------

def test_runtime_switches_and_refuses_with_reasons(tiny: Path, variants: Path) -> None:
    config = RuntimeConfig(model_path=str(tiny), backend="onnxruntime", device="cpu",
                           variants_dir=str(variants), intra_op_threads=1)
    runtime = DetectorRuntime(config, lambda p: rgb_view(p), lambda r: None, time.time_ns)
    try:
        assert runtime.active.variant.name == "fp32"
        ok = runtime.request("int8", "balanced", reason="test")
        assert ok.success and (ok.precision, ok.fusion_profile) == ("int8", "balanced")
        assert runtime.active.variant.name == "int8-ort" and ok.switch_ms > 0
        same = runtime.request("", "", reason="test")  # empty = keep
        assert same.success and "already running" in same.message
        bad = runtime.request("fp8", "", reason="test")
        assert not bad.success and "fp8" in bad.message
        assert runtime.active.variant.name == "int8-ort"  # untouched
        described = {v["name"]: v for v in runtime.describe_variants()}
        assert described["int8-ort"]["runs_here"] and not described["int8-trt"]["runs_here"]
        assert "serves int8 with int8-ort" in described["int8-trt"]["reason"]
    finally:
        runtime.close()


def test_runtime_refuses_a_backend_this_machine_lacks(tiny: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here")
    config = RuntimeConfig(model_path=str(tiny), backend="tensorrt")
    with pytest.raises(EngineError, match="TensorRT is not installed"):
        DetectorRuntime(config, lambda p: rgb_view(p), lambda r: None, time.time_ns)


def test_shipped_variants_are_complete_and_measured() -> None:
    """models/variants: every precision for both runtimes, each file matching the manifest,
    every variant within the guard in every lux bin (what the node switches between)."""
    root = Path(__file__).resolve().parents[1]
    catalog = Catalog(root / "models" / "defect_yolo.onnx", root / "models" / "variants")
    assert catalog.problems == []
    assert set(catalog.variants) == {"fp32", "fp16", "int8-ort", "int8-trt"}
    for name, variant in catalog.variants.items():
        assert variant.within_guard(0.005) is True, (name, variant.evaluation)
        assert set(variant.evaluation["per_lux_bin_map50"]) == {"dark", "dim", "bright",
                                                                 "sunlit"}
    manifest = json.loads((root / "models" / "variants" / "variants.json").read_text())
    assert manifest["evaluation"]["how"]["frames"] == 800


def test_nonfinite_outputs_are_counted_and_reported(tmp_path: Path) -> None:
    """A model whose output holds NaN rows: the frame is still answered (without them), the
    counters and the inference status say so."""
    from onnx_models import constant_output_model

    from edge_trt_ros.runtime.health import WARN, inference_health
    from edge_trt_ros.runtime.stats import WindowStats

    out = yolov8_output([(10, 10, 4, 4), (40, 30, 8, 8)], [[0.9, 0.0], [0.8, 0.0]])
    out[0, 0, 1] = np.nan
    model = constant_output_model(tmp_path / "nan.onnx", {"output0": out}, (64, 96),
                                  names_metadata(["scratch", "crack"], (64, 96)))
    done: list[FrameResult] = []
    pool, switcher, counters = _pool(model, tmp_path / "v", done.append)
    pool.start()
    pool.submit(Frame(np.zeros((64, 96, 3), np.uint8), 1))
    deadline = time.monotonic() + 5
    while not done and time.monotonic() < deadline:
        time.sleep(0.01)
    pool.stop()
    switcher.close()
    [result] = done
    assert len(result.detections.scores) == 1 and result.detections.nonfinite == 1
    snap = counters.snapshot()
    assert snap.processed == 1 and snap.nonfinite_frames == 1
    stats = WindowStats(5.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1)
    health = inference_health("active", stats, snap)
    assert health.level == WARN and "NaN/inf" in health.message
