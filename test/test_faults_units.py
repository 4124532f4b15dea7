"""The fault handling the node tests rely on, without ROS (docs/reliability.md, "Faults
injected"): a power sensor that comes back is used again, and its counter does not jump;
an engine that was built but cannot be stored still runs; held audit records are written
by a flush once the disk takes them. Disk full is the kernel's: a file-size limit
(RLIMIT_FSIZE) set inside a child process, so the test runner's own files are untouched."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from edge_trt_ros.power.estimate import EstimatedSensor
from edge_trt_ros.power.profiles import load_profiles
from edge_trt_ros.power.rapl import probe_rapl
from edge_trt_ros.power.select import RECOVERED, FallbackSensor

ZONE = "sys/class/powercap/intel-rapl:0"
X86 = load_profiles()["x86_cpu"]


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _rapl_tree(root: Path, energy_uj: int) -> Path:
    zone = root / ZONE
    zone.mkdir(parents=True)
    (zone / "name").write_text("package-0\n")
    (zone / "max_energy_range_uj").write_text("262143328850\n")
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    return zone / "energy_uj"


def test_a_power_sensor_that_comes_back_is_used_again_without_a_jump(tmp_path: Path) -> None:
    counter = _rapl_tree(tmp_path, 5_000_000)
    rapl = probe_rapl(tmp_path)
    clock = Clock()
    chain = FallbackSensor([rapl, EstimatedSensor(X86, lambda: 0.5)],
                           retry_s=5.0, clock=clock)
    counter.write_text("6000000\n")  # 1 J
    assert chain.read().source.startswith("rapl") and rapl.energy_j() == 1.0
    counter.unlink()
    assert chain.read().estimated and chain.degraded
    assert chain.last_failure is not None and chain.last_failure[1] == "rapl"
    counter.write_text("1000\n")  # a reloaded driver: the counter restarts near zero
    clock.t += 4.0
    assert chain.read().estimated  # not retried before retry_s
    clock.t += 1.0
    back = chain.read()
    assert back.source.startswith("rapl") and not chain.degraded
    assert chain.events[-1][1:] == ("estimate", "rapl", RECOVERED)
    assert back.energy_j == 1.0  # a new baseline, not a wrap of 262 kJ
    counter.write_text("2001000\n")
    assert rapl.energy_j() == 3.0


def test_a_sensor_that_stays_gone_is_retried_quietly(tmp_path: Path) -> None:
    counter = _rapl_tree(tmp_path, 0)
    clock = Clock()
    chain = FallbackSensor([probe_rapl(tmp_path),
                            EstimatedSensor(X86, lambda: 0.5)],
                           retry_s=5.0, clock=clock)
    counter.unlink()
    for _ in range(20):
        clock.t += 5.0
        assert chain.read().estimated
    assert len(chain.events) == 1  # one fallback, no event per failed retry


def _child(script: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script), str(tmp)],
                          capture_output=True, text=True, timeout=60)


def test_an_engine_built_but_not_stored_still_runs_and_leaves_no_file(tmp_path: Path) -> None:
    run = _child("""
        import logging, resource, sys
        from pathlib import Path
        from edge_trt_ros.engines.cache import CacheKey, EngineCache
        logging.basicConfig(level=logging.WARNING)
        cache = EngineCache(Path(sys.argv[1]) / "cache")
        key = CacheKey("0" * 64, "test", "1", "cpu")
        resource.setrlimit(resource.RLIMIT_FSIZE, (65536, resource.RLIM_INFINITY))
        engine, built = cache.get_or_build(key, lambda: b"x" * 1_000_000, len)
        print("ENGINE", engine, built)
    """, tmp_path)
    assert "ENGINE 1000000 True" in run.stdout, run.stderr
    assert "cannot store the engine just built" in run.stderr
    left = [p.name for p in (tmp_path / "cache").iterdir()]
    assert not [n for n in left if n.endswith((".engine", ".tmp", ".json"))], left


def test_held_audit_records_are_flushed_when_the_disk_takes_them(tmp_path: Path) -> None:
    run = _child("""
        import os, resource, sys
        from pathlib import Path
        from edge_trt_ros.adaptive.audit import AuditLog, read_audit
        from edge_trt_ros.errors import AuditWriteError
        path = Path(sys.argv[1]) / "audit.jsonl"
        log = AuditLog(path)
        log.append("start", 0.0, {})
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (path.stat().st_size, hard))
        try:
            log.append("decision", 1.0, {"n": 1})
        except AuditWriteError as exc:
            print("HELD", log.pending, exc)
        try:
            log.flush()
        except AuditWriteError:
            print("STILL FULL", log.pending)
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        print("FLUSHED", log.flush(), log.pending)
        result = read_audit(path)
        print("RECORDS", [r["kind"] for r in result.records], result.seq_gaps)
    """, tmp_path)
    assert "HELD 1" in run.stdout and "cannot write" in run.stdout, run.stdout + run.stderr
    assert "STILL FULL 1" in run.stdout
    assert "FLUSHED 1 0" in run.stdout
    assert "RECORDS ['start', 'decision'] ()" in run.stdout


def test_engines_are_prepared_below_the_workers_priority(tiny: Path) -> None:
    """A switch on a CPU whose cores the workers use must not delay their frames: the switch
    thread prepares at a lower priority; the thread that configures (main) keeps its own."""
    import os
    import threading

    from edge_trt_ros.detector import Detector
    from edge_trt_ros.engines.spec import EngineSpec
    from edge_trt_ros.runtime.switcher import PREPARE_NICE, EngineSwitcher
    from edge_trt_ros.variants.catalog import Catalog
    from edge_trt_ros.vision.decode import DecodeParams

    variant = Catalog(tiny, tiny.parent / "variants").variants["fp32"]
    spec = EngineSpec("onnxruntime", str(tiny), device="cpu", intra_op_threads=1)
    switcher = EngineSwitcher(lambda s, d: Detector.from_spec(s, d), 1,
                              DecodeParams(0.25, 0.45, 100))
    main_before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    switcher.start(spec, variant)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_before
    seen: list[int] = []

    def switch() -> None:
        for profile in ("balanced", "none"):  # twice: raised once, not twice
            switcher.switch(spec.with_variant(str(tiny), "fp32", profile), variant,
                            reason="test")
            seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    thread = threading.Thread(target=switch)
    thread.start()
    thread.join()
    switcher.close()
    process = os.getpriority(os.PRIO_PROCESS, os.getpid())
    assert seen == [min(19, process + PREPARE_NICE)] * 2
