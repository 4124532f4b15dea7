"""``edge-trt benchmark``: the efficiency-accuracy frontier of every variant, as files.

    edge-trt benchmark --quick --out results/benchmark      # a few minutes on a small CPU
    edge-trt benchmark --window-s 60 --evaluate 800         # MLPerf-length windows
    edge-trt benchmark --node --quick                       # through the running node
    edge-trt benchmark --compare A.json B.json              # side by side, B/A ratios
    edge-trt benchmark --report RESULT.json --out DIR       # re-draw tables and plots
    edge-trt benchmark --import-gpu-ort docs/results/gpu_ort.json --out DIR

Writes ``NAME.json`` (schema ``edge_trt_ros.benchmark/1``, docs/benchmark.md), ``NAME.md``
and the PNG plots (frontier, throughput vs power, latency) into ``--out``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
from pathlib import Path
from typing import Any

from edge_trt_ros.choices import AUTO, BACKENDS, FUSION_PROFILES, PRECISIONS

log = logging.getLogger("edge_trt_ros.cli.benchmark")

# (window s, repeats, warm-up frames, idle s): --quick, the default, --node --quick, --node
ENGINE_QUICK = (2.0, 2, 5, 3.0)
ENGINE_DEFAULT = (10.0, 3, 20, 10.0)
NODE_QUICK = (8.0, 2, 0, 3.0)
NODE_DEFAULT = (15.0, 3, 0, 10.0)
DEFAULT_OUT = Path("results/benchmark")
# options the node takes from its params file instead (refused with --node)
NOT_FOR_NODE = {"backend": AUTO, "device": AUTO, "threads": 0, "frames": 0, "variants": (),
                "evaluate": 0, "engine_cache_dir": "", "warmup_frames": None}


def _names(text: str, allowed: tuple[str, ...] | None, what: str) -> tuple[str, ...]:
    items = tuple(x.strip() for x in text.split(",") if x.strip())
    if allowed is not None:
        bad = [x for x in items if x not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {what} {', '.join(bad)} (one of: "
                                             f"{', '.join(allowed)})")
    return items


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "benchmark", help="every variant x fusion profile: speed, power, mJ/frame, mAP, "
        "the efficiency-accuracy frontier (JSON + Markdown + PNG)",
        description="Runs every (precision x fusion profile) variant the backend can run "
        "with warm-up and fixed windows, interleaved; measures latency percentiles, power "
        "(idle baseline in the same run), mJ/frame, FPS/W, effective TOPS/W and takes "
        "mAP@0.5 from the variant manifest or measures it (--evaluate N).")
    p.add_argument("model", nargs="?", type=Path, default=None,
                   help="base ONNX model (default: the shipped models/defect_yolo.onnx)")
    p.add_argument("--out", type=Path, default=None,
                   help=f"output directory (default: {DEFAULT_OUT}; --compare writes files "
                   "only when given)")
    p.add_argument("--name", default="benchmark",
                   help="file name stem: NAME.json, NAME.md, plots NAME_*.png "
                   "(plain frontier.png etc. for the default 'benchmark')")
    p.add_argument("--quick", action="store_true",
                   help=f"short windows: engine {ENGINE_QUICK[0]:g} s x {ENGINE_QUICK[1]} "
                   f"repeats; node {NODE_QUICK[0]:g} s x {NODE_QUICK[1]}")
    p.add_argument("--backend", default=AUTO, choices=(AUTO, *BACKENDS))
    p.add_argument("--device", default=AUTO, help="auto | cpu | cuda:N")
    p.add_argument("--precisions", default=",".join(PRECISIONS),
                   type=lambda s: _names(s, PRECISIONS, "precision"))
    p.add_argument("--profiles", default=None,
                   type=lambda s: _names(s, FUSION_PROFILES, "fusion profile"),
                   help="comma list (default: all four; --node: max)")
    p.add_argument("--variants", default="", type=lambda s: _names(s, None, "variant"),
                   help="manifest names to run (default: every file the backend runs)")
    p.add_argument("--variants-dir", default="", help="where variants.json lives")
    p.add_argument("--threads", type=int, default=0,
                   help="intra-op threads per engine (0: the backend's default)")
    p.add_argument("--window-s", type=float, default=None,
                   help=f"seconds per window (default {ENGINE_DEFAULT[0]:g}, --node "
                   f"{NODE_DEFAULT[0]:g}; 60 for MLPerf-like windows)")
    p.add_argument("--frames", type=int, default=0,
                   help="a fixed frame count per window instead of --window-s")
    p.add_argument("--warmup-frames", type=int, default=None)
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--idle-s", type=float, default=None,
                   help="idle baseline window, before and after (0: none)")
    p.add_argument("--evaluate", type=int, default=0, metavar="N",
                   help="measure mAP@0.5 on N test frames per entry (default: take it from "
                   "the variant manifest)")
    p.add_argument("--hardware-profile", default=AUTO)
    p.add_argument("--engine-cache-dir", default="")
    p.add_argument("--no-plots", action="store_true", help="JSON and Markdown only")
    p.add_argument("--node", action="store_true",
                   help="through the running ROS node (needs scripts/env.sh), configured by "
                   "config/detector.yaml: peak throughput, latency and missed frames at "
                   "--rate-hz, watts, mJ/frame")
    p.add_argument("--rate-hz", type=float, default=30.0, help="--node: the fixed input rate")
    p.add_argument("--workers", type=int, default=None,
                   help="--node: override the params file's workers")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--compare", nargs=2, type=Path, metavar=("A.json", "B.json"),
                      help="put two results side by side (B/A ratios); no measurement")
    mode.add_argument("--report", type=Path, metavar="RESULT.json",
                      help="re-write the Markdown and plots of a stored result")
    mode.add_argument("--import-gpu-ort", type=Path, metavar="GPU_ORT.json",
                      help="convert bench/gpu_ort.py output into this result format")
    p.set_defaults(func=run)


def _plots_available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def _default_model() -> Path:
    from edge_trt_ros.resources import DEFAULT_MODEL, find_resource

    return find_resource(DEFAULT_MODEL)


def _error(message: str) -> int:
    print(f"edge-trt benchmark: error: {message}", file=sys.stderr)
    return 2


def write_outputs(result: dict[str, Any], out: Path, name: str, plots: bool) -> list[Path]:
    """NAME.json, the plots and NAME.md (which embeds them) in ``out``."""
    from edge_trt_ros.files import write_json_atomic
    from edge_trt_ros.reports.markdown import result_markdown
    from edge_trt_ros.reports.schema import validate

    problems = validate(result)
    if problems:  # a bug here, not the user's: say so before writing a file others read
        raise ValueError("result does not match its schema: " + "; ".join(problems[:5]))
    out.mkdir(parents=True, exist_ok=True)
    written = [write_json_atomic(out / f"{name}.json", result)]
    made: dict[str, str] = {}
    if plots:
        from edge_trt_ros.reports.plots import write_plots

        made = write_plots(result, out, prefix="" if name == "benchmark" else f"{name}_")
        written += [out / f for f in made.values()]
    md = out / f"{name}.md"
    md.write_text(result_markdown(result, made))
    written.append(md)
    return written


def _progress_bar(total_hint: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total_hint, unit="step", desc="benchmark", dynamic_ncols=True,
                disable=None)


def _measure(args: argparse.Namespace) -> dict[str, Any]:
    from tqdm.contrib.logging import logging_redirect_tqdm

    model = str(args.model or _default_model())
    quick, default = (NODE_QUICK, NODE_DEFAULT) if args.node else (ENGINE_QUICK,
                                                                   ENGINE_DEFAULT)
    base = quick if args.quick else default
    window_s = args.window_s if args.window_s is not None else base[0]
    repeats = args.repeats if args.repeats is not None else base[1]
    warmup = args.warmup_frames if args.warmup_frames is not None else base[2]
    idle_s = args.idle_s if args.idle_s is not None else base[3]
    profiles = args.profiles or (("max",) if args.node else FUSION_PROFILES)
    bar = _progress_bar(1)

    def progress(p: Any) -> None:
        bar.set_description(p.stage)
        bar.total, bar.n = p.total, p.done
        bar.set_postfix_str(f"{p.label}: {p.detail}"[:60])  # redraws the bar
        if bar.disable:  # not a terminal (a CI log): one line per step instead
            log.info("[%d/%d] %s %s: %s", p.done, p.total, p.stage, p.label, p.detail)

    try:
        with logging_redirect_tqdm():
            if args.node:
                from edge_trt_ros.reports.node_benchmark import NodeBenchConfig, run_node

                return run_node(NodeBenchConfig(
                    model_path=model, precisions=args.precisions, profiles=profiles,
                    window_s=window_s, repeats=repeats, idle_s=idle_s, rate_hz=args.rate_hz,
                    workers=args.workers, hardware_profile=args.hardware_profile,
                    variants_dir=args.variants_dir), progress)
            from edge_trt_ros.reports.benchmark import BenchmarkConfig, run_benchmark

            config = BenchmarkConfig(
                model_path=model, variants_dir=args.variants_dir, backend=args.backend,
                device=args.device, precisions=args.precisions, profiles=profiles,
                variants=args.variants, threads=args.threads, window_s=window_s,
                frames=args.frames, warmup_frames=warmup, repeats=repeats, idle_s=idle_s,
                evaluate=args.evaluate, hardware_profile=args.hardware_profile,
                engine_cache_dir=args.engine_cache_dir)
            log.info("benchmark: %s, every entry %d warm-up frames + %s x %d repeats, idle "
                     "%g s", model, warmup, config.window_text(), repeats, idle_s)
            return run_benchmark(config, progress)
    finally:
        bar.close()


def _f4(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _summary(result: dict[str, Any], written: list[Path]) -> None:
    from edge_trt_ros.reports.markdown import power_line

    print(power_line(result).replace("**", ""))
    for e in result["entries"]:
        acc = e.get("accuracy") or {}
        mark = "  <- frontier" if e["frontier"] else ""
        print(f"  {e['label']:<24} {e['fps'] or float('nan'):8.1f} frames/s  "
              f"p50 {e['latency_ms'].get('p50') or float('nan'):7.2f} ms  "
              f"{e['efficiency'].get('mj_per_frame') or float('nan'):8.1f} mJ/frame  "
              f"mAP@0.5 {_f4(acc.get('map50'))}{mark}")
    for s in result.get("skipped", []):
        print(f"  left out {s['label']}: {s['reason']}")
    for path in written:
        print(f"wrote {path}")


def run(args: argparse.Namespace) -> int:
    from edge_trt_ros.reports.schema import load_result

    plots = not args.no_plots
    if plots and not _plots_available():
        return _error("the plots need matplotlib: pip install 'edge-trt-ros[bench]' "
                      "(or pass --no-plots for JSON and Markdown only)")
    try:
        if args.compare:
            from edge_trt_ros.reports.compare import compare
            from edge_trt_ros.reports.markdown import compare_markdown

            a, b = (load_result(p) for p in args.compare)
            cmp = compare(a, b)
            text = compare_markdown(cmp, str(args.compare[0]), str(args.compare[1]))
            print(text)
            if args.out is not None:
                args.out.mkdir(parents=True, exist_ok=True)
                (args.out / f"{args.name}.compare.md").write_text(text)
                (args.out / f"{args.name}.compare.json").write_text(json.dumps(cmp, indent=2))
                print(f"wrote {args.out / (args.name + '.compare.md')}")
            return 0
        if args.node and not (args.report or args.import_gpu_ort):
            given = [k for k, default in NOT_FOR_NODE.items() if getattr(args, k) != default]
            if given:
                return _error("--node runs the node as config/detector.yaml configures it; "
                              + ", ".join("--" + k.replace("_", "-") for k in given)
                              + " do not apply there (set backend, device, threads in the "
                              "params file)")
        if args.report:
            result = load_result(args.report)
        elif args.import_gpu_ort:
            from edge_trt_ros.reports.gpu_import import import_gpu_ort

            result = import_gpu_ort(args.import_gpu_ort, args.model or _default_model())
        else:
            result = _measure(args)
    except ValueError as exc:
        return _error(str(exc))
    written = write_outputs(result, args.out or DEFAULT_OUT, args.name, plots)
    _summary(result, written)
    return 0
