"""Fusion report: what each fusion profile fused, the activation bytes it moves, per-node time.

For ONNX Runtime the report compares the graph the session runs (saved through
``optimized_model_filepath``) with the original, and profiles a few runs: every node event
of ONNX Runtime's profiler carries its input-activation and output bytes and its duration,
so "activation bytes moved per inference" is their sum over one run - memory traffic the
fusions remove shows up there directly.

Which original nodes an optimized node stands for is read from names, in this order:
0. original nodes that compute only from weights (Constant, Identity, shape arithmetic)
   are folded;
1. an optimized node's name is the original node's name or output name, or that plus a
   suffix ONNX Runtime adds (``.../Mul/QuickGeluFusion/``, ``..._output_0_nchwc``);
2. else the optimized node that produces one of the original node's output tensors
   (BatchNorm folded into Conv: the Conv now writes the BatchNorm's output);
3. else the original node was absorbed into the node that stands for its nearest
   consumer, or, when nothing reads its outputs any more, folded.
Optimized nodes that stand for nothing were inserted (layout reorders).
"""

from __future__ import annotations

import json
import os
import re
import statistics
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edge_trt_ros.choices import FUSION_PROFILES
from edge_trt_ros.engines.fusion import fusion_settings, markdown_table
from edge_trt_ros.model_info import read_model_info

_NAME_SUFFIX_SEPARATORS = ("/", "_nchwc")


@dataclass(frozen=True)
class FusedNode:
    """One node of the optimized graph and the original nodes it computes."""

    name: str
    op_type: str
    originals: tuple[str, ...]
    original_ops: tuple[str, ...]


@dataclass(frozen=True)
class FusionMap:
    """How an optimized graph relates to its original."""

    fused: tuple[FusedNode, ...]  # optimized nodes standing for more than one original node
    inserted: tuple[str, ...]  # optimized nodes with no original (layout reorders, casts)
    folded: tuple[str, ...]  # original nodes whose outputs became constants or went unused
    represented: dict[str, str]  # original node -> optimized node


@dataclass(frozen=True)
class NodeProfile:
    """Mean time and bytes of one optimized node over the profiled runs."""

    name: str
    op_type: str
    mean_us: float
    activation_bytes: int  # inputs read (activations only, not weights)
    output_bytes: int


@dataclass
class ProfileReport:
    """One fusion profile of one model on ONNX Runtime."""

    profile: str
    ort_level: str
    nodes_original: int
    nodes_optimized: int
    op_types: dict[str, int]
    fused: list[FusedNode]
    inserted: list[str]
    folded: list[str]
    activation_bytes: int  # read + written by all nodes in one inference
    latency_ms_median: float
    latency_ms_p90: float
    nodes: list[NodeProfile] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The JSON-friendly form without the per-node list."""
        d = asdict(self)
        d.pop("nodes")
        d["fused"] = [asdict(f) for f in self.fused]
        return d


def _op(node: onnx.NodeProto) -> str:
    return f"{node.domain}:{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type


def _stands_for(opt_name: str, candidate: str) -> bool:
    return opt_name == candidate or any(
        opt_name.startswith(candidate + sep) for sep in _NAME_SUFFIX_SEPARATORS
    )


def fusion_map(original: onnx.ModelProto, optimized: onnx.ModelProto) -> FusionMap:
    """Map original nodes onto the optimized nodes that compute them (rules in the module doc)."""
    opt_nodes = list(optimized.graph.node)
    producer = {out: n.name for n in opt_nodes for out in n.output if out}
    constants = {i.name for i in optimized.graph.initializer}
    opt_names = sorted(n.name for n in opt_nodes if n.name)

    def named_after(candidates: Sequence[str]) -> str | None:
        for cand in candidates:
            for opt_name in opt_names:
                if cand and _stands_for(opt_name, cand):
                    return opt_name
        return None

    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in original.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    # Nodes computing only from weights (Constant, Identity of an initializer, shape
    # arithmetic on them) are folded, whatever they were folded into.
    known = {i.name for i in original.graph.initializer}
    folded: list[str] = []
    for n in original.graph.node:
        if all(not i or i in known for i in n.input):
            folded.append(n.name)
            known.update(n.output)
    weights_only = set(folded)

    direct: dict[str, str] = {}
    for n in original.graph.node:
        if n.name in weights_only:
            continue
        hit = named_after([n.name, *n.output])
        hit = hit or next((producer[o] for o in n.output if o in producer), None)
        if hit is not None:
            direct[n.name] = hit

    represented: dict[str, str] = dict(direct)
    for n in original.graph.node:
        if n.name in represented or n.name in weights_only:
            continue
        if all(o in constants or o not in consumers for o in n.output if o):
            folded.append(n.name)
            continue
        # Absorbed: the nearest consumer (breadth first) that maps onto an optimized node.
        queue, seen, hit = list(n.output), set(), None
        while queue and hit is None:
            tensor = queue.pop(0)
            for c in consumers.get(tensor, []):
                if c.name in direct:
                    hit = direct[c.name]
                    break
                if c.name not in seen:
                    seen.add(c.name)
                    queue.extend(c.output)
        if hit is None:
            folded.append(n.name)
        else:
            represented[n.name] = hit

    groups: dict[str, list[str]] = {}
    for orig, opt in represented.items():
        groups.setdefault(opt, []).append(orig)
    order = {n.name: i for i, n in enumerate(original.graph.node)}
    ops = {n.name: _op(n) for n in original.graph.node}
    fused = []
    for n in opt_nodes:
        if len(groups.get(n.name, ())) > 1:
            members = tuple(sorted(groups[n.name], key=order.__getitem__))
            fused.append(FusedNode(n.name, _op(n), members, tuple(ops[o] for o in members)))
    inserted = tuple(n.name for n in opt_nodes if n.name not in groups and n.name not in ops)
    return FusionMap(tuple(fused), inserted, tuple(folded), represented)


def _node_profiles(trace: Path, skip_runs: int) -> tuple[list[NodeProfile], list[float], int]:
    """Per-node means, per-run latencies (ms) and activation bytes of one run, from a trace."""
    events = json.loads(trace.read_text())
    runs = [e for e in events if e.get("name") == "model_run"]
    if len(runs) <= skip_runs:
        raise ValueError(f"profile {trace} holds {len(runs)} runs; need more than {skip_runs}")
    start = runs[skip_runs]["ts"]
    durations: dict[str, list[float]] = {}
    meta: dict[str, tuple[str, int, int]] = {}
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time") or e["ts"] < start:
            continue
        name = e["name"].removesuffix("_kernel_time")
        args = e["args"]
        durations.setdefault(name, []).append(float(e["dur"]))
        meta[name] = (args["op_name"], int(args.get("activation_size", 0)),
                      int(args.get("output_size", 0)))
    nodes = [NodeProfile(n, meta[n][0], round(statistics.fmean(d), 1), meta[n][1], meta[n][2])
             for n, d in durations.items()]
    latencies = [e["dur"] / 1000.0 for e in runs[skip_runs:]]
    moved = sum(n.activation_bytes + n.output_bytes for n in nodes)
    return nodes, latencies, moved


def onnxruntime_report(
    model_path: str | os.PathLike[str],
    tensor: np.ndarray,
    profiles: Sequence[str] = FUSION_PROFILES,
    *,
    runs: int = 20,
    warmup: int = 3,
    threads: int = 0,
) -> list[ProfileReport]:
    """Fusion report of one model file on ONNX Runtime (CPU) for each fusion profile."""
    from edge_trt_ros.engines.onnxruntime_backend import OnnxRuntimeEngine

    original = onnx.load(str(model_path), load_external_data=False)
    reports = []
    with tempfile.TemporaryDirectory(prefix="edge_trt_inspect.") as tmp:
        for profile in profiles:
            optimized_path = Path(tmp) / f"{profile}.onnx"
            engine = OnnxRuntimeEngine(model_path, fusion_profile=profile,
                                       intra_op_threads=threads,
                                       optimized_model_path=optimized_path,
                                       profile_prefix=Path(tmp) / profile)
            try:
                for _ in range(warmup + runs):
                    engine.infer(tensor)
                trace = engine.end_profiling()
            finally:
                engine.release()
            optimized = onnx.load(str(optimized_path), load_external_data=False)
            fmap = fusion_map(original, optimized)
            nodes, latencies, moved = _node_profiles(trace, warmup)
            reports.append(ProfileReport(
                profile=profile,
                ort_level=fusion_settings(profile).ort_level_name,
                nodes_original=len(original.graph.node),
                nodes_optimized=len(optimized.graph.node),
                op_types=dict(Counter(_op(n) for n in optimized.graph.node).most_common()),
                fused=list(fmap.fused), inserted=list(fmap.inserted), folded=list(fmap.folded),
                activation_bytes=moved,
                latency_ms_median=round(statistics.median(latencies), 3),
                latency_ms_p90=round(float(np.percentile(latencies, 90)), 3),
                nodes=sorted(nodes, key=lambda n: -n.mean_us),
            ))
    return reports


def fusion_patterns(report: ProfileReport) -> dict[str, int]:
    """How often each pattern was fused, e.g. ``Conv+BatchNormalization -> Conv: 57``."""
    return dict(Counter(f"{'+'.join(f.original_ops)} -> {f.op_type}"
                        for f in report.fused).most_common())


def markdown(model: str, reports: Sequence[ProfileReport], top: int = 5) -> str:
    """The report as Markdown: one summary table, then what each profile fused."""
    reference = next((r for r in reports if r.profile == "none"), reports[0] if reports else None)
    base = reference.activation_bytes if reference else 0
    lines = [f"# Fusion report: {model}", "",
             "| profile | ORT level | nodes (original -> run) | fused nodes | inserted | "
             "activation MB / inference | vs unfused | profiled p50 ms | p90 ms |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in reports:
        ratio = r.activation_bytes / base if base else float("nan")
        lines.append(f"| {r.profile} | {r.ort_level} | {r.nodes_original} -> {r.nodes_optimized} "
                     f"| {len(r.fused)} | {len(r.inserted)} | {r.activation_bytes / 1e6:.1f} "
                     f"| {ratio:.2f}x | {r.latency_ms_median:.2f} | {r.latency_ms_p90:.2f} |")
    for r in reports:
        lines += ["", f"## {r.profile}", ""]
        patterns = fusion_patterns(r)
        lines += [f"- fused: {p} x{n}" for p, n in patterns.items()] or ["- fused: nothing"]
        if r.inserted:
            inserted = set(r.inserted)
            kinds = Counter(n.op_type for n in r.nodes if n.name in inserted)
            lines.append(f"- inserted: {len(r.inserted)} nodes "
                         f"({', '.join(f'{k} x{v}' for k, v in kinds.items()) or 'not run'})")
        lines.append("- slowest nodes: " + "; ".join(
            f"{n.name} ({n.op_type}) {n.mean_us / 1000:.2f} ms" for n in r.nodes[:top]))
    lines += ["", "## What each profile sets", "", markdown_table()]
    return "\n".join(lines) + "\n"


def sample_input(model_path: str | os.PathLike[str]) -> np.ndarray:
    """A letterboxed test-split frame at the model's input size: what the runtime feeds."""
    from edge_trt_ros.dataset import render_sample, split_lux, split_seeds
    from edge_trt_ros.vision.image import rgb_view
    from edge_trt_ros.vision.letterbox import Letterbox

    info = read_model_info(model_path)
    seed = split_seeds("test", 1)[0]
    sample = render_sample(seed, lux=split_lux("test", seed))
    tensor, _ = Letterbox(info.input_hw, info.input_layout)(rgb_view(sample.image))
    return tensor


# --- TensorRT -------------------------------------------------------------------------------

_TRT_DTYPE_BYTES: tuple[tuple[str, int], ...] = (
    ("bf16", 2), ("fp16", 2), ("half", 2), ("fp32", 4), ("float", 4), ("uint8", 1),
    ("int8", 1), ("fp8", 1), ("int32", 4), ("int64", 8), ("bool", 1),
)
_TRT_VECTOR_WIDTH = {"two": 2, "four": 4, "eight": 8, "sixteen": 16, "thirty-two": 32}
_TRT_CHANNEL_ALIGN = re.compile(r"channel % (\d+) == 0")


def inspector_tensor_bytes(tensor: dict[str, Any]) -> int | None:
    """Bytes of one tensor in the engine inspector's detailed JSON, or None when the entry
    does not say (dynamic shapes, unknown type). Channel-vectorized formats ("Thirty-two wide
    channel vectorized ...", "... where channel % 8 == 0") pad the channel dimension."""
    dims = tensor.get("Dimensions")
    text = str(tensor.get("Format/Datatype", "")).lower()
    size = next((n for token, n in _TRT_DTYPE_BYTES if token in text), None)
    if not isinstance(dims, list) or not dims or size is None or any(
            not isinstance(d, int) or d < 0 for d in dims):
        return None
    shape = list(dims)
    aligned = _TRT_CHANNEL_ALIGN.search(text)
    width = int(aligned.group(1)) if aligned else next(
        (w for word, w in _TRT_VECTOR_WIDTH.items() if text.startswith(word + " wide")), 1)
    if width > 1 and len(shape) >= 2:
        shape[1] = -(-shape[1] // width) * width
    return int(np.prod(shape)) * size


@dataclass
class TrtProfileReport:
    """One fusion profile of one variant file on TensorRT."""

    profile: str
    builder_optimization_level: int
    marks_boundaries: bool
    layers: int
    fused_layers: int  # engine layers computing more than one ONNX node
    activation_bytes: int  # inputs + outputs of every layer the inspector sized
    unsized_tensors: int  # tensors the inspector gave no size for (not in the sum)
    layer_ms_total: float  # IProfiler, summed over layers, mean of the runs
    engine_layers: list[dict[str, Any]] = field(default_factory=list)
    layer_ms: dict[str, float] = field(default_factory=dict)


def tensorrt_report(
    model_path: str | os.PathLike[str],
    tensor: np.ndarray,
    profiles: Sequence[str] = FUSION_PROFILES,
    *,
    precision: str,
    cache_dir: str | os.PathLike[str],
    runs: int = 20,
    trt_module: Any = None,
    cuda: Any = None,
) -> list[TrtProfileReport]:
    """Fusion report of one variant file on TensorRT: the engine inspector's layers with the
    ONNX nodes each one fused, activation bytes from the layers' tensor sizes, and per-layer
    time from an IProfiler. Builds (or loads cached) engines, so it needs a GPU."""
    from edge_trt_ros.engines.tensorrt_backend import load_engine
    from edge_trt_ros.engines.tensorrt_build import TrtBuildConfig

    reports = []
    for profile in profiles:
        config = TrtBuildConfig.for_variant(precision, profile)
        engine = load_engine(Path(model_path), config, Path(cache_dir), trt_module=trt_module,
                             cuda=cuda)
        try:
            layers = engine.layers()
            times = engine.layer_times_ms(tensor, runs=runs)
        finally:
            engine.release()
        sized = [inspector_tensor_bytes(t) for layer in layers
                 for t in [*layer["details"].get("Inputs", []),
                           *layer["details"].get("Outputs", [])] if isinstance(t, dict)]
        reports.append(TrtProfileReport(
            profile=profile,
            builder_optimization_level=config.builder_optimization_level,
            marks_boundaries=config.mark_batchnorm or config.mark_activation,
            layers=len(layers),
            fused_layers=sum(1 for layer in layers if layer["fused"]),
            activation_bytes=sum(b for b in sized if b is not None),
            unsized_tensors=sum(1 for b in sized if b is None),
            layer_ms_total=round(sum(times.values()), 4),
            engine_layers=[{k: v for k, v in layer.items() if k != "details"}
                           for layer in layers],
            layer_ms={k: round(v, 4) for k, v in times.items()},
        ))
    return reports


def tensorrt_markdown(model: str, reports: Sequence[TrtProfileReport], top: int = 5) -> str:
    """The TensorRT report as Markdown: one summary table, then the biggest fusions."""
    lines = [f"# Fusion report (TensorRT): {model}", "",
             "| profile | builder opt level | boundaries marked | engine layers | fused layers "
             "| activation MB / inference | unsized tensors | layer time ms |",
             "|---|---|---|---|---|---|---|---|"]
    for r in reports:
        lines.append(f"| {r.profile} | {r.builder_optimization_level} "
                     f"| {'yes' if r.marks_boundaries else 'no'} | {r.layers} | {r.fused_layers} "
                     f"| {r.activation_bytes / 1e6:.1f} | {r.unsized_tensors} "
                     f"| {r.layer_ms_total:.3f} |")
    for r in reports:
        biggest = sorted(r.engine_layers, key=lambda layer: -len(layer["onnx_nodes"]))[:top]
        lines += ["", f"## {r.profile}", ""]
        lines += [f"- {layer['name'][:120]} ({layer['layer_type']}): "
                  f"{len(layer['onnx_nodes'])} ONNX nodes" for layer in biggest if layer["fused"]]
    return "\n".join(lines) + "\n"
