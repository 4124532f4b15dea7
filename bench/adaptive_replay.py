#!/usr/bin/env python3
"""The adaptive controller over a simulated 8-hour shift, replayed without ROS.

The same scripted shift (edge_trt_ros.adaptive.shift: light sunlit -> dark -> back, a heat
ramp to 2 C below throttling, the battery draining, noise) is replayed through the real
controller (edge_trt_ros.adaptive.replay) with two sets of per-variant costs:

* ``cpu_estimate`` - this CPU, ONNX Runtime, the variants the catalog serves here (fp32,
  fp16, int8-ort): capacity from the manifest's measured ``predict_ms_mean`` (the variant
  evaluation's per-frame Detector time at its thread count), power from the estimate model
  of the hardware profile (idle + utilisation x (TDP - idle), utilisation = served fps x
  predict_ms x threads / cores). ESTIMATED (scope system_estimate): the x86_cpu profile's
  idle and TDP are placeholders. Accuracy: the manifest's evaluation on this CPU.
* ``gpu_nvml`` - the H200 runs in docs/results/gpu_ort.json (ONNX Runtime CUDA provider,
  profile max, 60 s engine-loop windows, batch 1): fps and mJ/frame the NVML energy counter
  measured for the whole board (scope gpu_board), at full throughput - not at the replay's
  camera rate, where idle power would dominate every variant alike. The variants the catalog
  serves on CUDA (fp32, fp16, int8-trt). Accuracy: the same file's GPU evaluation, or
  where that failed the variant manifest's CPU evaluation of the same files (said so).

Each scenario seeds the table with what its source file records (the manifest: fps only;
the GPU benchmark: fps and energy); everything else is learnt from the replayed windows
(3% log-normal noise). Writes results/bench/adaptive_replay.json with, per scenario,
``energy_saved_vs_fp32``, ``guard_violations`` (frames served outside the guard for that
step's lux bin; bar 0), ``switches_per_hour`` (bar <= 12), the audit log's record counts and
its ``edge-trt audit`` summary.

    python bench/adaptive_replay.py            # 8 h shift, 1 s steps (~10 s)
    python bench/adaptive_replay.py --quick    # 2 h
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from edge_trt_ros.adaptive.audit import AuditLog, log_files, read_audit
from edge_trt_ros.adaptive.config import ControllerConfig
from edge_trt_ros.adaptive.controller import AdaptiveController
from edge_trt_ros.adaptive.guard import Accuracy
from edge_trt_ros.adaptive.replay import VariantCost, replay
from edge_trt_ros.adaptive.shift import shift_trace
from edge_trt_ros.adaptive.summary import format_summary, summarise
from edge_trt_ros.adaptive.table import EfficiencyTable
from edge_trt_ros.power.estimate import estimate_watts
from edge_trt_ros.power.profiles import load_profiles
from edge_trt_ros.variants.catalog import Catalog

ROOT = Path(__file__).resolve().parents[1]

MODEL = ROOT / "models" / "defect_yolo.onnx"


def cpu_scenario(variants_dir: Path, profile_name: str, input_fps: float,
                 cores: int) -> dict[str, Any]:
    """Costs from the manifest's predict_ms and the profile's estimate model."""
    catalog = Catalog(MODEL, variants_dir)
    served = catalog.available("onnxruntime", "cpu")
    how = catalog.manifest_path
    manifest = json.loads(how.read_text())
    threads = int(((manifest.get("evaluation") or {}).get("how") or {}).get(
        "intra_op_threads") or cores)
    profile = load_profiles()[profile_name]
    idle, tdp = profile.idle_watts, profile.tdp_watts()
    rows, costs, seeds = [], {}, {}
    for v in served.values():
        ev = v.evaluation or {}
        ms = ev.get("predict_ms_mean")
        if not ms:
            raise SystemExit(f"{v.name}: no predict_ms_mean in {how}; run `edge-trt variants "
                             f"{MODEL} --evaluate` first")
        capacity = 1000.0 / ms
        fps = min(input_fps, capacity)
        util = min(1.0, fps * ms / 1000.0 * threads / cores)
        watts = estimate_watts(idle, tdp, util)
        mj = 1000.0 * watts / fps
        costs[v.name] = VariantCost(v.name, capacity, mj,
                                    f"capacity 1000/predict_ms ({ms} ms, {threads} threads); "
                                    f"power ESTIMATE {watts:.1f} W at {fps:.1f} fps")
        rows.append((v.name, v.precision, Accuracy.from_evaluation(v.evaluation, v.precision)))
        seeds[v.name] = {"fps": capacity}
    return {
        "name": "cpu_estimate", "rows": rows, "costs": costs, "seeds": seeds,
        "seed_detail": f"{how.relative_to(ROOT)} predict_ms_mean", "estimated": True,
        "scope": "system_estimate",
        "cost_source": (f"capacity: {how.relative_to(ROOT)} evaluation predict_ms_mean "
                        f"(measured {manifest['evaluation'].get('measured')}, "
                        f"{manifest['evaluation'].get('machine', {}).get('cpu')}, "
                        f"{threads} intra-op threads); power: ESTIMATE, hardware profile "
                        f"{profile.name} idle {idle:g} W + utilisation x ({tdp:g} - {idle:g}) W "
                        f"(placeholder figures), utilisation = served fps x predict_ms x "
                        f"{threads} threads / {cores} cores"),
        "accuracy_source": f"{how.relative_to(ROOT)} evaluation (this CPU, 800 test frames)",
    }


def gpu_scenario(results: Path, variants_dir: Path) -> dict[str, Any]:
    """Costs measured by NVML on the H200 (docs/results/gpu_ort.json)."""
    data = json.loads(results.read_text())
    runs = data["results"]
    accuracy = runs["accuracy"]
    catalog = Catalog(MODEL, variants_dir)
    served = catalog.available("onnxruntime", "cuda")
    board = data["phases"][0]["environment"].get("board", {})
    rows, costs, seeds = [], {}, {}
    on_cpu = []  # variants whose GPU evaluation failed: the same file's CPU evaluation
    for v in served.values():
        run = runs.get(f"{v.name}/max")
        if run is None:
            continue
        scored = accuracy.get(v.name)
        if not scored or "error" in scored:
            if not v.evaluation:
                continue
            scored = v.evaluation
            on_cpu.append(v.name)
        costs[v.name] = VariantCost(v.name, run["fps"], run["mj_per_frame"],
                                    f"NVML {run['seconds']:g} s window: {run['fps']} fps, "
                                    f"{run['power_w']} W board")
        rows.append((v.name, v.precision, Accuracy.from_evaluation(scored, v.precision)))
        seeds[v.name] = {"fps": run["fps"], "power_w": run["power_w"],
                         "mj_per_frame": run["mj_per_frame"]}
    return {
        "name": "gpu_nvml", "rows": rows, "costs": costs, "seeds": seeds,
        "seed_detail": f"{results.relative_to(ROOT)} (NVML)", "estimated": False,
        "scope": "gpu_board (NVML, H200)",
        "cost_source": (f"{results.relative_to(ROOT)}: ONNX Runtime CUDA provider, profile "
                        f"max, engine loop at full throughput, batch 1; mJ/frame from the "
                        f"NVML energy counter of the whole board ({board.get('name')}, driver "
                        f"{board.get('driver')}); measured at saturation, not at the replay's "
                        f"input rate"),
        "accuracy_source": f"{results.relative_to(ROOT)} accuracy (on the GPU, 800 frames)"
                           + (f"; {', '.join(on_cpu)}: not scored on the GPU, the same files' "
                              f"evaluation on the CPU ({variants_dir.relative_to(ROOT)})"
                              if on_cpu else ""),
    }


def run_scenario(sc: dict[str, Any], objective: str, args: argparse.Namespace,
                 out_dir: Path) -> dict[str, Any]:
    trace = shift_trace(hours=args.hours, step_s=args.step, seed=args.seed,
                        throttle_c=args.throttle_c)
    config = ControllerConfig(objective=objective, target_fps=args.target_fps,
                              min_dwell_s=args.min_dwell)
    table = EfficiencyTable(sc["rows"])
    for name, seed in sc["seeds"].items():
        table.seed(name, detail=sc["seed_detail"], estimated=sc["estimated"], **seed)
    log_path = out_dir / f"{sc['name']}.{objective}.audit.jsonl"
    for f in log_files(log_path):  # a fresh log per run of the benchmark
        f.unlink()
    audit = AuditLog(log_path)
    start = "fp32"
    controller = AdaptiveController(config, table, start, 0.0, audit=audit)
    t0 = time.perf_counter()
    result = replay(trace, controller, sc["costs"], input_fps=args.input_fps, noise=args.noise,
                    seed=args.seed, switch_s=args.switch_s, scope=sc["scope"],
                    estimated=sc["estimated"])
    controller.close(trace.samples[-1].t + trace.step_s)
    wall = time.perf_counter() - t0
    read = read_audit(log_path)
    summary = summarise(read)
    decision_records = summary["records_by_kind"].get("decision", 0)
    body = result.to_dict()
    return {
        "scope": sc["scope"], "estimated": sc["estimated"], "cost_source": sc["cost_source"],
        "accuracy_source": sc["accuracy_source"],
        "costs": {n: {"fps": round(c.fps, 2), "mj_per_frame": round(c.mj_per_frame, 2),
                      "note": c.source} for n, c in sc["costs"].items()},
        "guard": {r[0]: r[2].to_dict() for r in sc["rows"]},
        "energy_saved_vs_fp32": body["energy_saved_vs_fp32"],
        "guard_violations": body["guard_violations"],
        "switches_per_hour": body["switches_per_hour"],
        "audit_records": {"decision_records": decision_records,
                          "decisions_recorded_by_controller": result.decisions_recorded,
                          "equal": decision_records == result.decisions_recorded,
                          "decisions_made": result.decisions, "log": str(log_path),
                          "skipped_lines": len(read.skipped), "seq_gaps": len(read.seq_gaps)},
        "replay": body, "audit_summary": summary, "audit_summary_text": format_summary(summary),
        "replay_wall_s": round(wall, 2),
    }


def print_result(name: str, objective: str, res: dict[str, Any]) -> None:
    r = res["replay"]
    print(f"\n== {name}, objective {objective} ({res['scope']}"
          f"{', ESTIMATED' if res['estimated'] else ''})")
    print(f"costs: {res['cost_source']}")
    for n, c in res["costs"].items():
        print(f"  {n:<9} {c['fps']:8.1f} fps  {c['mj_per_frame']:8.1f} mJ/frame  "
              f"({c['note']})")
    print(f"energy_saved_vs_fp32 {res['energy_saved_vs_fp32']}  guard_violations "
          f"{res['guard_violations']}  switches_per_hour {res['switches_per_hour']}  "
          f"({r['switches']} switches, {r['decisions']} decisions, "
          f"{res['audit_records']['decision_records']} decision records)")
    print(f"time per variant (s): {r['time_per_variant_s']}")
    for e in r["switch_log"]:
        print(f"  t={e['t_s'] / 3600:5.2f} h {e['from']} -> {e['to']} [{e['trigger']}] "
              f"{e['reason']}")
    print(res["audit_summary_text"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hours", type=float, default=8.0)
    p.add_argument("--quick", action="store_true", help="a 2-hour shift")
    p.add_argument("--step", type=float, default=1.0, help="seconds between samples/decisions")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--input-fps", type=float, default=30.0, help="camera rate")
    p.add_argument("--target-fps", type=float, default=30.0)
    p.add_argument("--objectives", nargs="+", default=["efficiency", "accuracy"],
                   help="one replay per objective (the bars are for efficiency)")
    p.add_argument("--min-dwell", type=float, default=60.0)
    p.add_argument("--noise", type=float, default=0.03, help="log-normal sigma of measurements")
    p.add_argument("--switch-s", type=float, default=0.25,
                   help="seconds the old variant keeps serving after a switch decision (the "
                        "CPU switch bar is 250 ms)")
    p.add_argument("--throttle-c", type=float, default=90.0)
    p.add_argument("--cores", type=int, default=2, help="CPU cores of the estimate")
    p.add_argument("--hardware-profile", default="x86_cpu")
    p.add_argument("--variants", type=Path, default=ROOT / "models" / "variants")
    p.add_argument("--gpu-results", type=Path, default=ROOT / "docs" / "results" / "gpu_ort.json")
    p.add_argument("--out", type=Path, default=ROOT / "results" / "bench" / "adaptive_replay.json")
    args = p.parse_args(argv)
    if args.quick:
        args.hours = 2.0
    out_dir = args.out.parent / "adaptive_replay"
    out_dir.mkdir(parents=True, exist_ok=True)
    scenarios = [cpu_scenario(args.variants, args.hardware_profile, args.input_fps, args.cores)]
    if args.gpu_results.is_file():
        scenarios.append(gpu_scenario(args.gpu_results, args.variants))
    report: dict[str, Any] = {
        "benchmark": "adaptive_replay",
        "command": " ".join(["bench/adaptive_replay.py", *(argv or sys.argv[1:])]),
        "trace": shift_trace(hours=args.hours, step_s=args.step, seed=args.seed,
                             throttle_c=args.throttle_c).description,
        "settings": {"objectives": args.objectives, "target_fps": args.target_fps,
                     "input_fps": args.input_fps, "min_dwell_s": args.min_dwell,
                     "step_s": args.step, "noise": args.noise, "switch_s": args.switch_s},
        "bars": {"energy_saved_vs_fp32": ">= 0.35", "guard_violations": "0",
                 "switches_per_hour": "<= 12"},
        "scenarios": {},
    }
    for sc in scenarios:
        report["scenarios"][sc["name"]] = {}
        for objective in args.objectives:
            res = run_scenario(sc, objective, args, out_dir)
            report["scenarios"][sc["name"]][objective] = res
            print_result(sc["name"], objective, res)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
