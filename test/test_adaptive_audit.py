"""The audit log: one record per decision, rotation that keeps every record, a crash that
leaves a readable log, write errors that are raised (never dropped), and ``edge-trt audit``.
Real files, a real crashed process, a real full device (/dev/full) and a real file-size
limit; no stand-ins."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edge_trt_ros.adaptive.audit import AuditLog, log_files, read_audit
from edge_trt_ros.adaptive.config import ControllerConfig
from edge_trt_ros.adaptive.controller import AdaptiveController
from edge_trt_ros.adaptive.inputs import Inputs, Light, LiveWindow
from edge_trt_ros.adaptive.replay import VariantCost, replay
from edge_trt_ros.adaptive.shift import shift_trace
from edge_trt_ros.adaptive.summary import format_summary, summarise
from edge_trt_ros.adaptive.table import EfficiencyTable
from edge_trt_ros.cli import audit as audit_cli
from edge_trt_ros.errors import AuditWriteError, EdgeTrtError

ROOT = Path(__file__).resolve().parents[1]


def drops(**d: float) -> dict:
    return {"map50": 0.98, "map50_drop_vs_fp32": {"overall": max(d.values()), **d}}


MANIFEST = {"variants": {
    "fp32": {"precision": "fp32", "evaluation": {"map50": 0.9874}},
    "int8-full": {"precision": "int8",
                  "evaluation": drops(dark=0.0075, dim=0.0025, bright=0.0024, sunlit=0.003)},
    "int8-ort": {"precision": "int8",
                 "evaluation": drops(dark=0.0025, dim=0.0014, bright=0.001, sunlit=0.0022)},
}}
COSTS = {"fp32": VariantCost("fp32", 38.0, 1780.0),
         "int8-full": VariantCost("int8-full", 78.0, 900.0),
         "int8-ort": VariantCost("int8-ort", 74.0, 1076.0)}


def controller(audit: AuditLog | None, **config: float) -> AdaptiveController:
    table = EfficiencyTable.from_manifest(MANIFEST)
    for name, c in COSTS.items():
        table.seed(name, fps=c.fps, mj_per_frame=c.mj_per_frame, detail="test")
    cfg = ControllerConfig(**{"target_fps": 30.0, "min_dwell_s": 60.0, **config})
    return AdaptiveController(cfg, table, "fp32", 0.0, audit=audit)


def test_one_record_per_decision_and_a_followup_one_window_after_each_switch(
        tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    ctrl = controller(AuditLog(log))
    result = replay(shift_trace(hours=2.0, step_s=2.0, seed=3), ctrl, COSTS, input_fps=30)
    ctrl.close(7200.0)
    read = read_audit(log)
    kinds = [r["kind"] for r in read.records]
    assert kinds[0] == "start" and kinds[-1] == "stop"
    assert kinds.count("decision") == ctrl.decisions_recorded == result.decisions_recorded
    switches = [r for r in read.records if r["kind"] == "decision" and r["action"] == "switch"]
    assert len(switches) == result.switches >= 2
    followups = [r for r in read.records if r["kind"] == "followup"]
    assert {f["ref"] for f in followups} == {s["decision_id"] for s in switches}
    for f in followups:
        assert f["realised"]["mj_per_frame"] > 0 and f["expected"]["mj_per_frame"] > 0
        assert "mj_per_frame_error" in f
    rec = switches[0]
    for key in ("time", "t_mono", "trigger", "reason", "inputs", "candidates", "from", "to",
                "expected", "mode", "config", "context"):
        assert key in rec, key
    assert rec["mode"] == "auto" and rec["expected"]["map50"] is not None
    assert {c["name"] for c in rec["candidates"]} == set(COSTS)
    assert all("guard" in c and "meets_fps" in c and "within_power" in c
               for c in rec["candidates"])
    assert not read.skipped and not read.seq_gaps
    assert [r["seq"] for r in read.records] == list(range(1, len(read.records) + 1))


def test_manual_forced_and_refused_switches_are_recorded(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    ctrl = controller(AuditLog(log))
    ctrl.manual("int8-full", success=False, forced=False, now=1.0, guard_refusal=True,
                message="int8-full fails the accuracy guard; set force to run it anyway")
    ctrl.manual("int8-full", success=True, forced=True, now=2.0, message="forced")
    ctrl.step(Inputs(window=LiveWindow("int8-full", 2.0, 3.0, 30, 30.0,
                                       energy_per_frame_mj=905.0), light=Light(40, 3.0)), 3.0)
    ctrl.manual("fp32", success=True, forced=False, now=4.0, message="switched")
    records = read_audit(log).records
    kinds = [r["kind"] for r in records]
    assert kinds == ["start", "refusal", "forced", "followup", "decision", "manual"]
    refusal, forced, follow, hold = records[1], records[2], records[3], records[4]
    assert refusal["cause"] == "guard" and not refusal["success"]
    assert forced["mode"] == "forced" and forced["accuracy"]["drops"]["dark"] == 0.0075
    assert follow["mode"] == "forced" and follow["realised"]["mj_per_frame"] == 905.0
    assert hold["trigger"] == "forced_hold"
    summary = summarise(read_audit(log))
    assert summary["forced_switches"] == 1 and summary["guard_refusals"] == 1
    assert summary["switches_by_mode"] == {"forced": 1, "manual": 1}


def test_rotation_keeps_every_record_in_order(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    audit = AuditLog(log, max_bytes=4000)
    for i in range(300):
        audit.append("decision", float(i), {"i": i, "pad": "x" * (i % 50)})
    audit.close()
    files = log_files(log)
    assert len(files) > 10 and audit.rotations == len(files) - 1
    assert files[0].name == "audit.jsonl.1" and files[-1] == log
    for f in files:
        data = f.read_bytes()
        assert data.endswith(b"\n") and len(data) <= 4000  # no record split across files
    read = read_audit(log)
    assert [r["i"] for r in read.records] == list(range(300))
    assert [r["seq"] for r in read.records] == list(range(1, 301))
    assert not read.skipped and not read.seq_gaps
    # reopening continues the sequence after the rotated files
    again = AuditLog(log, max_bytes=4000)
    assert again.append("decision", 300.0, {"i": 300}) == 301
    again.close()


def test_a_torn_last_line_is_skipped_reported_and_repaired_on_reopen(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    audit = AuditLog(log)
    for i in range(5):
        audit.append("decision", float(i), {"i": i})
    audit.close()
    with open(log, "ab") as f:  # the process died half-way through a record
        f.write(b'{"schema":"edge_trt_ros.audit/1","seq":6,"kind":"deci')
    read = read_audit(log)
    assert [r["i"] for r in read.records] == [0, 1, 2, 3, 4]
    assert len(read.skipped) == 1 and read.skipped[0].line == 6
    assert read.skipped[0].reason.startswith("torn last line")
    summary = summarise(read)
    assert summary["skipped_lines"][0]["line"] == 6

    reopened = AuditLog(log)
    seq = reopened.append("decision", 6.0, {"i": 6})
    reopened.close()
    assert seq == 7  # after the recovered record (6)
    read = read_audit(log)
    assert [r["kind"] for r in read.records][-2:] == ["recovered", "decision"]
    assert read.records[-2]["torn_bytes"] == len(b'{"schema":"edge_trt_ros.audit/1","seq":6,'
                                                 b'"kind":"deci')
    assert read.records[-1]["i"] == 6
    assert len(read.skipped) == 1 and "unreadable line" in read.skipped[0].reason


def test_records_survive_the_writer_being_killed(tmp_path: Path) -> None:
    """A writer process SIGKILLed mid-stream: every record whose append returned is there."""
    log = tmp_path / "audit.jsonl"
    child = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from edge_trt_ros.adaptive.audit import AuditLog
        log = AuditLog({str(log)!r}, max_bytes=20000)
        i = 0
        while True:
            seq = log.append("decision", float(i), {{"i": i, "pad": "y" * 300}})
            print(seq, flush=True)
            i += 1
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    acknowledged = [int(proc.stdout.readline()) for _ in range(150)]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    read = read_audit(log)
    seqs = {r["seq"] for r in read.records}
    assert set(acknowledged) <= seqs
    assert sorted(seqs) == list(range(1, max(seqs) + 1)) and not read.seq_gaps
    assert len(read.skipped) <= 1  # at most the line being written when it died


def test_disk_full_raises_a_clear_error_and_the_decision_still_stands() -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    with pytest.raises(AuditWriteError) as err:
        controller(AuditLog("/dev/full"))
    assert isinstance(err.value, EdgeTrtError)
    assert "/dev/full: cannot write (No space left on device)" in str(err.value)
    assert "held in memory" in str(err.value)

    ctrl = controller(None)
    ctrl.audit = AuditLog("/dev/full")
    with pytest.raises(AuditWriteError) as err:
        ctrl.step(Inputs(light=Light(40, 100.0), input_fps=30), 100.0)
    decision = err.value.decision
    assert decision is not None and decision is ctrl.last and decision.switch
    assert ctrl.state.pending == decision.to_variant  # the move still happens
    assert ctrl.audit.pending >= 1 and ctrl.audit_failures == 1
    from edge_trt_ros.adaptive.health import adaptive_health
    from edge_trt_ros.runtime.health import ERROR

    health = adaptive_health(ctrl, enabled=True, audit_error=str(err.value))
    assert health.level == ERROR and "cannot be written" in health.message


def test_an_unopenable_log_is_an_error_at_open(tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("")
    with pytest.raises(AuditWriteError, match="cannot open for appending"):
        AuditLog(blocker / "audit.jsonl")


def test_records_held_while_writing_fails_are_written_when_it_works_again(
        tmp_path: Path) -> None:
    """A file-size limit (RLIMIT_FSIZE) makes writes fail with EFBIG, like a full disk; in a
    child process so the limit touches nothing else."""
    log = tmp_path / "audit.jsonl"
    child = textwrap.dedent(f"""
        import resource, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from edge_trt_ros.adaptive.audit import AuditLog
        from edge_trt_ros.errors import AuditWriteError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        log = AuditLog({str(log)!r})
        log.append("decision", 0.0, {{"i": 0}})
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (log.path.stat().st_size + 10, hard))
        failures = 0
        for i in (1, 2, 3):
            try:
                log.append("decision", float(i), {{"i": i, "pad": "z" * 200}})
            except AuditWriteError as exc:
                failures += 1
                print("ERR", exc.pending, exc, flush=True)
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        log.append("decision", 4.0, {{"i": 4}})
        print("OK", failures, log.pending, flush=True)
    """)
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("ERR 1 ") and "File too large" in lines[0]
    assert lines[2].startswith("ERR 3 ")
    assert lines[-1] == "OK 3 0"
    read = read_audit(log)
    assert [r["i"] for r in read.records] == [0, 1, 2, 3, 4]  # nothing dropped, in order
    assert [r["seq"] for r in read.records] == [1, 2, 3, 4, 5]
    # the 10 bytes that did fit were a torn line, ended before the held records
    assert len(read.skipped) == 1


def test_summary_of_a_shift_log_and_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture
                                            ) -> None:
    log = tmp_path / "audit.jsonl"
    ctrl = controller(AuditLog(log, max_bytes=20_000))
    trace = shift_trace(hours=4.0, step_s=2.0, seed=5)
    result = replay(trace, ctrl, COSTS, input_fps=30, noise=0.0)
    ctrl.close(trace.samples[-1].t + trace.step_s)
    assert len(log_files(log)) > 1  # it rotated
    s = summarise(read_audit(log))
    assert s["switches"] == result.switches
    assert s["hours"] == pytest.approx(4.0, abs=1e-6)
    assert s["switches_per_hour"] == pytest.approx(result.switches_per_hour, rel=1e-6)
    for name, sec in result.time_per_variant_s.items():
        assert s["time_per_variant_s"][name] == pytest.approx(sec, abs=0.2)
    # noise-free costs: the records' figures are the true ones, so both savings agree
    assert s["energy_vs_fp32"]["saved"] == pytest.approx(result.energy_saved_vs_fp32, abs=1e-3)
    assert s["energy_vs_fp32"]["coverage"] == pytest.approx(1.0)
    assert s["guard_refusals"] >= 1 and "int8-full" in s["guard_refused_variants"]
    assert s["forced_switches"] == 0
    text = format_summary(s)
    assert f"switches: {result.switches} (auto {result.switches})" in text
    assert "per hour" in text and "int8-ort" in text and "guard refusals" in text

    parser = argparse.ArgumentParser()
    audit_cli.register(parser.add_subparsers(dest="command"))
    assert audit_cli.run(parser.parse_args(["audit", str(log), "--json"])) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["switches"] == result.switches and printed["files"] == s["files"]
    assert audit_cli.run(parser.parse_args(["audit", str(log)])) == 0
    assert "energy per frame vs always-fp32" in capsys.readouterr().out
    with open(log, "ab") as f:
        f.write(b'{"torn')
    assert audit_cli.run(parser.parse_args(["audit", str(log), "--strict"])) == 1
    assert "torn last line" in capsys.readouterr().out
