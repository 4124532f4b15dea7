"""Faults injected into the running node (issue 14, item 3), each on the real node process
over loopback DDS, with the kernel or the filesystem doing the injecting (no mocks):

- the power sensor disappears (a RAPL fixture tree, tools/fake_rapl.py, whose counter is
  deleted mid-run) and comes back;
- the camera stalls and resumes;
- the engine fails mid-stream (a model ONNX Runtime cannot run on bright frames);
- a variant file is damaged on disk, so building its engine fails during a switch;
- memory runs out during a switch (the address-space limit of the node lowered with
  prlimit while it runs);
- the disk is full while the audit log and the engine cache are written (the node's
  file-size limit lowered with prlimit: every write past it fails with EFBIG).

In each: the node stays up, the old engine keeps serving, /diagnostics says what happened,
and it recovers when the fault clears. docs/reliability.md, "Faults injected".
"""

from __future__ import annotations

import importlib.util
import resource
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from node_probe import (
    DetectorProcess,
    Probe,
    Stream,
    record,
    ros_context,
    tiny_catalog,
    values,
)
from onnx import numpy_helper
from onnx_models import fails_on_bright_frames_model, names_metadata, yolov8_output

from edge_trt_ros.adaptive.audit import read_audit

ROOT = Path(__file__).resolve().parents[1]
CAMERA = "/fault_cam/image_raw"
OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR
RATE_HZ = 10.0  # far below what the tiny model sustains: a frame lost is the fault's
PAD_MB = 160  # the int8 variant's unused weights: more than the memory left in the fault
MEMORY_MARGIN_MB = 48  # address space left to the node above what it maps
FRAME = np.full((120, 160, 3), 90, np.uint8)


def _fake_rapl() -> object:
    spec = importlib.util.spec_from_file_location("fake_rapl", ROOT / "tools" / "fake_rapl.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Rapl:
    """A RAPL counter advancing at 18 W, which a test can remove and bring back."""

    def __init__(self, root: Path) -> None:
        self.module = _fake_rapl()
        self.counter: Path = self.module.make_tree(root)  # type: ignore[attr-defined]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.start()

    def start(self) -> None:
        if not self.counter.exists():
            self.counter.write_text("1000000\n")  # a reloaded driver starts anywhere
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.module.run_counter,  # type: ignore[attr-defined]
                                        args=(self.counter, 18.0, self._stop), daemon=True)
        self._thread.start()

    def remove(self) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self.counter.unlink()


def _padded(model: Path, out: Path) -> None:
    """The tiny model with PAD_MB of weights nothing uses: a variant that needs memory."""
    proto = onnx.load(str(model))
    proto.graph.initializer.append(numpy_helper.from_array(
        np.zeros(PAD_MB * 2**20 // 4, np.float32), "unused_padding"))
    onnx.save(proto, str(out))


@dataclass
class Running:
    node: DetectorProcess
    probe: Probe
    rapl: Rapl
    tmp: Path
    variants: Path
    audit: Path


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("faults")
    model, variants = tiny_catalog(tmp, _padded)
    sysfs = tmp / "sysfs"
    rapl = Rapl(sysfs)
    audit = tmp / "state" / "audit.jsonl"
    node = DetectorProcess(tmp, CAMERA, {
        "model_path": str(model), "variants_dir": str(variants),
        "engine_cache_dir": str(tmp / "cache"), "input_qos.reliability": "reliable",
        "input_qos.depth": "10", "stats_window_s": "1.0", "diagnostics_period_s": "0.25",
        "adaptive.enabled": "true", "adaptive.objective": "accuracy",
        "adaptive.min_dwell_s": "86400.0", "adaptive.audit_log_path": str(audit)},
        env={"EDGE_TRT_SYSFS_ROOT": str(sysfs)})
    shutdown = ros_context()
    probe = Probe("fault_probe", CAMERA)
    try:
        assert probe.ready(FRAME, "rgb8"), node.stop()
        yield Running(node, probe, rapl, tmp, variants, audit)
    finally:
        probe.close()
        shutdown()
        text = node.stop()
        (tmp / "detector.log").write_text(text)  # kept for a failed run
        assert node.proc.returncode == 0, text[-4000:]
        assert "Traceback" not in text, text[-4000:]


def _stream(r: Running) -> Stream:
    return Stream(r.probe, FRAME, RATE_HZ, encoding="rgb8")


def _all_answered(r: Running, stamps: list[int]) -> None:
    missing = r.probe.wait_answered(stamps)
    if missing:
        e = r.probe.latest_efficiency()
        counted = (f"the node counted received {e.frames_received}, replaced "
                   f"{e.frames_replaced}, rejected {e.frames_rejected}, failed "
                   f"{e.frames_failed}, dropped {e.frames_dropped}")
    assert not missing, f"{len(missing)} of {len(stamps)} frames unanswered ({counted}):\n" \
                        f"{r.node.text()[-3000:]}"


def _alive(r: Running) -> None:
    assert r.node.proc.poll() is None, f"the node died:\n{r.node.text()[-4000:]}"


def _mapped_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmSize")


def test_out_of_memory_during_a_switch_keeps_the_old_engine(running: Running) -> None:
    """First in the module, so the first phase meets a node that has never switched: no
    switch thread exists yet and none can be started (that killed the node once)."""
    r = running
    pid = r.node.pid
    with _stream(r) as stream:
        for margin_mb in (4, MEMORY_MARGIN_MB):  # no room for a thread; for all but int8
            limit = _mapped_bytes(pid) + margin_mb * 2**20
            resource.prlimit(pid, resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
            try:
                refused = r.probe.switch_to("int8", "max")
                assert not refused.success, refused.message
                assert "still running fp32/" in refused.message, refused.message
                engine = r.probe.status("engine", lambda s: s.level == WARN)
                assert engine is not None and "switch refused" in engine.message, engine
                during = len(stream.sent)
                time.sleep(1.0)  # frames keep coming in on the old engine meanwhile
                _all_answered(r, stream.since(during))
            finally:
                resource.prlimit(pid, resource.RLIMIT_AS,
                                 (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
            assert r.probe.switch_to("fp32", "balanced").success  # works again at once
        switched = r.probe.switch_to("int8", "max")
        assert switched.success, switched.message
        engine = r.probe.status("engine", lambda s: s.level == OK)
        assert engine is not None and values(engine)["precision"] == "int8"
        assert r.probe.switch_to("fp32", "max").success
    _all_answered(r, stream.sent)
    _alive(r)
    record("faults", "memory runs out during a switch", how="RLIMIT_AS lowered with "
           f"prlimit to the mapped size + 4 MiB, then + {MEMORY_MARGIN_MB} MiB; the variant "
           f"needs {PAD_MB} MiB", seen=refused.message, frames_sent=len(stream.sent),
           frames_lost=0, node_up=True, recovered=True)


def test_power_sensor_disappears_and_comes_back(running: Running) -> None:
    r = running
    with _stream(r) as stream:
        measured = r.probe.status("power", lambda s: s.level == OK
                                  and values(s)["source"].startswith("rapl"))
        assert measured is not None, r.node.text()[-3000:]
        first = len(stream.sent)
        r.rapl.remove()
        gone = r.probe.status("power", lambda s: s.level == WARN and "ESTIMATED" in s.message)
        assert gone is not None, r.node.text()[-3000:]
        assert "rapl failed" in gone.message, gone.message  # says which sensor and why
        r.rapl.start()
        back = r.probe.status("power", lambda s: s.level == OK
                              and values(s)["source"].startswith("rapl"), timeout=20.0)
        assert back is not None, r.node.text()[-3000:]
        sent = stream.since(first)
    _all_answered(r, sent)  # frames never waited for the sensor
    watts = float(values(back)["mean_watts"])
    assert 10.0 < watts < 30.0, watts  # the counter's 18 W, not a jump from a new baseline
    assert "power sensor rapl reads again" in r.node.text()
    _alive(r)
    record("faults", "power sensor disappears", how="the fake RAPL counter deleted, then "
           "restored (tools/fake_rapl.py tree)", seen=gone.message, frames_sent=len(sent),
           frames_lost=0, node_up=True, recovered=True)


def test_camera_stalls_and_resumes(running: Running) -> None:
    r = running
    before = r.probe.latest_efficiency()
    with _stream(r) as stream:
        assert r.probe.status("inference", lambda s: s.level == OK) is not None
    _all_answered(r, stream.sent)
    sent = len(stream.sent)
    stalled = r.probe.status("inference", lambda s: s.level == WARN and "no frames" in s.message)
    assert stalled is not None, "no /diagnostics saying the camera stopped"
    with _stream(r) as stream:
        resumed = r.probe.status("inference", lambda s: s.level == OK and "fps" in s.message)
        assert resumed is not None
    _all_answered(r, stream.sent)
    after = r.probe.latest_efficiency()
    assert after.frames_dropped == before.frames_dropped  # a pause is not a loss
    record("faults", "camera stalls and resumes", how="the stream stopped for over a "
           "stats window, then restarted", seen=stalled.message,
           frames_sent=sent + len(stream.sent),
           frames_lost=0, node_up=True, recovered=True)


def test_damaged_variant_file_fails_its_switch_and_the_old_engine_serves(
        running: Running) -> None:
    r = running
    fp16 = r.variants / "tiny.fp16.onnx"
    good = r.tmp / "fp16.good"
    shutil.copy(fp16, good)
    with _stream(r) as stream:
        fp16.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 3])  # a torn copy
        try:
            refused = r.probe.switch_to("fp16", "max")
            assert not refused.success and "preparing fp16/max failed" in refused.message, \
                refused.message
            assert "still running fp32/max" in refused.message
            engine = r.probe.status("engine", lambda s: s.level == WARN)
            assert engine is not None and "switch refused" in engine.message
            assert values(engine)["precision"] == "fp32"
        finally:
            shutil.copy(good, fp16)
        switched = r.probe.switch_to("fp16", "max")
        assert switched.success, switched.message
        engine = r.probe.status("engine", lambda s: s.level == OK)
        assert engine is not None and values(engine)["precision"] == "fp16"
        assert r.probe.switch_to("fp32", "max").success
    _all_answered(r, stream.sent)
    _alive(r)
    record("faults", "a build fails during a switch", how="the fp16 variant file cut to a "
           "third on disk, then restored", seen=refused.message, frames_sent=len(stream.sent),
           frames_lost=0, node_up=True, recovered=True)


def test_disk_full_for_the_audit_log_and_the_engine_cache(running: Running) -> None:
    r = running
    pid = r.node.pid
    assert r.probe.status("adaptive controller", lambda s: s.level == OK) is not None
    before = read_audit(r.audit)
    with _stream(r) as stream:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (512, resource.RLIM_INFINITY))
        try:
            # Not cached yet: ONNX Runtime writes the optimised graph before the cache
            # stores it, and either write fails. Refused with the old engine serving, or
            # run without being stored; never a dead node or a half-written entry. The
            # switch is also an audit record, so the log's write fails now, whether or not
            # the controller has anything else to record (a steady stay writes nothing).
            outcome = r.probe.switch_to("fp32", "conservative")
            if outcome.success:
                assert "cannot store the engine just built" in r.node.text()
            else:
                assert "still running fp32/max" in outcome.message, outcome.message
                engine = r.probe.status("engine", lambda s: s.level == WARN)
                assert engine is not None and "switch refused" in engine.message
            failing = r.probe.status("adaptive controller", lambda s: s.level == ERROR,
                                     timeout=20.0)
            assert failing is not None, r.node.text()[-3000:]
            assert "cannot be written" in failing.message, failing.message
            held = int(values(failing)["audit_pending"])
            assert held >= 1
        finally:
            resource.prlimit(pid, resource.RLIMIT_FSIZE,
                             (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        healthy = r.probe.status("adaptive controller", lambda s: s.level == OK
                                 and values(s)["audit_pending"] == "0", timeout=20.0)
        assert healthy is not None, r.node.text()[-3000:]
        switched = r.probe.switch_to("fp32", "conservative")
        assert switched.success, switched.message
        assert r.probe.switch_to("fp32", "max").success
    _all_answered(r, stream.sent)
    assert "can be written again" in r.node.text()
    assert not list((r.tmp / "cache").glob(".*.tmp"))  # no temp file left by a failed write
    after = read_audit(r.audit)
    assert not after.seq_gaps, after.seq_gaps  # the held records were written, none lost
    assert len(after.records) >= len(before.records) + held
    kinds = [rec["kind"] for rec in after.records[len(before.records):]]
    assert "lost" not in kinds, kinds
    _alive(r)
    record("faults", "disk full: audit log and engine cache", how="RLIMIT_FSIZE lowered to "
           "512 bytes with prlimit (every write past it fails), then lifted",
           seen=failing.message, cache_switch=outcome.message, held_records=held,
           frames_sent=len(stream.sent), frames_lost=0, node_up=True, recovered=True)


def test_engine_failing_mid_stream_is_reported_and_recovers(
        tmp_path: Path, running: Running) -> None:
    """Its own node: a model that ONNX Runtime cannot run on bright frames."""
    camera = "/fault_engine_cam/image_raw"
    names = ["scratch", "crack", "dent", "stain"]
    model = fails_on_bright_frames_model(tmp_path / "m.onnx", {"output0": yolov8_output(
        [(160, 160, 100, 50)], [[0.9, 0.0, 0.0, 0.0]])}, (320, 320),
        names_metadata(names, (320, 320)))
    node = DetectorProcess(tmp_path, camera, {
        "model_path": str(model), "engine_cache_dir": str(tmp_path / "cache"),
        "input_qos.reliability": "reliable", "input_qos.depth": "10",
        "stats_window_s": "1.0", "diagnostics_period_s": "0.25"}, name="failing_detector")
    probe = Probe("fault_engine_probe", camera, "/failing_detector")
    try:
        dark = np.full((120, 160, 3), 40, np.uint8)
        assert probe.ready(dark, "rgb8"), node.stop()
        with Stream(probe, dark, RATE_HZ, encoding="rgb8") as stream:
            assert probe.status("inference", lambda s: s.level == OK) is not None
            healthy = list(stream.sent)
            stream.pixels = np.full((120, 160, 3), 255, np.uint8)
            failing = probe.status("inference", lambda s: s.level == ERROR)
            assert failing is not None, node.text()[-3000:]
            assert "failed in the engine" in failing.message, failing.message
            bright_from = len(stream.sent)
            stream.pixels = dark
            recovered_from = len(stream.sent)
            back = probe.status("inference", lambda s: s.level == OK, timeout=10.0)
            assert back is not None, node.text()[-3000:]
            after = stream.since(recovered_from + 2)  # a bright frame may still be on its way
        assert not probe.wait_answered(healthy) and not probe.wait_answered(after)
        eff = probe.latest_efficiency()
        assert eff.frames_dropped >= 1 and int(values(back)["frames_failed"]) >= 1
        assert bright_from > 0
        assert node.proc.poll() is None, node.text()[-4000:]
    finally:
        probe.close()
        text = node.stop()
    assert node.proc.returncode == 0 and "Traceback" not in text, text[-4000:]
    assert "inference failed on a" in text
    record("faults", "engine fails mid-stream", how="a model ONNX Runtime cannot run on "
           "white frames, fed white frames between dark ones", seen=failing.message,
           frames_failed=int(values(back)["frames_failed"]), node_up=True, recovered=True)
