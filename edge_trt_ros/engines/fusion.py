"""Fusion profiles: one table of what each profile sets in each backend.

A fusion profile trades memory traffic against debuggability: fused layers keep
intermediate activations in registers/cache instead of writing them to memory, while
unfused graphs expose every BatchNorm and activation output (useful to bisect an accuracy
problem, and the baseline that shows what fusion buys). The table is plain data, so the
TensorRT backend, the fusion report and the docs read the same values without importing
``tensorrt`` or ``onnxruntime``.

| profile      | ONNX Runtime graph level | ORT CUDA conv | TensorRT builder | TensorRT marked  |
|              |                          | layout        | opt. level       | outputs          |
|--------------|--------------------------|---------------|------------------|------------------|
| max          | ORT_ENABLE_ALL           | NCHW          | 5                | none             |
| balanced     | ORT_ENABLE_EXTENDED      | NCHW          | 3                | none             |
| conservative | ORT_ENABLE_BASIC         | NCHW          | 1                | BatchNorm + act. |
| none         | ORT_DISABLE_ALL          | NCHW          | 0                | BatchNorm + act. |

What the ONNX Runtime levels do (CPU): ``basic`` folds constants, removes redundant nodes
and folds BatchNorm/Mul/Add into Conv; ``extended`` adds fused kernels (Conv+activation,
``QuickGelu`` for x*sigmoid(x), QDQ groups -> QLinear ops); ``all`` adds the layout
transforms (NCHWc blocked convolutions, NHWC for quantized convs). ``none`` runs the graph
node by node, which for a Q/DQ model means dequantize -> float op -> quantize.

ONNX Runtime on CUDA (device ``cuda:N``): the same graph levels. On CUDA ``all`` adds no
CPU layout transform (NCHWc and the int8 NHWC rewrite are CPU-provider passes) and Q/DQ
groups are not fused into int8 kernels (the QLinear fusions are CPU-provider passes too: a
Q/DQ file runs as dequantize -> float kernel -> quantize). The CUDA provider's own layout
knob (``prefer_nhwc``) stays off in every profile: on an H200 NHWC ran the shipped model
slower in fp32 and fp16 and broke the int8 Q/DQ file (docs/results/gpu_ort.md), so
``ort_cuda_layout`` is NCHW for all (the engine's ``cuda_layout`` overrides it to compare).
``conservative`` keeps BASIC folding (constants, BatchNorm into Conv); ``none`` runs every
node, its shape arithmetic on the CPU. A CUDA graph is captured where ONNX Runtime allows
it (every node on the CUDA provider), whatever the profile: it removes launch overhead,
not memory traffic.

TensorRT: the builder optimisation level (0-5) bounds how many tactics and fusions it
tries; marking a tensor as a network output forces it to be written to memory, which
breaks the Conv+BN+activation fusion at that boundary. ``auto`` is not a row of this
table: it is resolved per device to one of these profiles (the profile measured best
there, or before any measurement, from the hardware profile's memory bandwidth).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from edge_trt_ros.choices import AUTO, FUSION_PROFILES

# What "activation" means when an ONNX graph's boundaries are materialised. SiLU appears in
# ONNX as Sigmoid followed by Mul; the Mul of x and sigmoid(x) is the activation output.
BATCHNORM_OP_TYPES: tuple[str, ...] = ("BatchNormalization",)
ACTIVATION_OP_TYPES: tuple[str, ...] = (
    "Relu", "LeakyRelu", "PRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Clip",
    "Elu", "Selu", "Softplus", "Mish", "Gelu",
)


@dataclass(frozen=True)
class FusionSettings:
    """What one fusion profile sets in each backend."""

    profile: str
    ort_graph_optimization: str  # key of onnxruntime_backend.GRAPH_OPTIMIZATION
    ort_level_name: str  # the onnxruntime.GraphOptimizationLevel member, for docs/logs
    trt_builder_optimization_level: int
    trt_mark_batchnorm_outputs: bool
    trt_mark_activation_outputs: bool
    description: str
    ort_cuda_layout: str = "nchw"  # convolution layout on ONNX Runtime's CUDA provider

    @property
    def materialises_boundaries(self) -> bool:
        return self.trt_mark_batchnorm_outputs or self.trt_mark_activation_outputs


SETTINGS: dict[str, FusionSettings] = {
    s.profile: s
    for s in (
        FusionSettings("max", "all", "ORT_ENABLE_ALL", 5, False, False,
                       "every fusion and layout transform; the fastest"),
        FusionSettings("balanced", "extended", "ORT_ENABLE_EXTENDED", 3, False, False,
                       "kernel fusions without the CPU-specific layout transforms"),
        FusionSettings("conservative", "basic", "ORT_ENABLE_BASIC", 1, True, True,
                       "only graph-level folding; BatchNorm/activation outputs materialised"),
        FusionSettings("none", "none", "ORT_DISABLE_ALL", 0, True, True,
                       "the graph as written, every boundary in memory (reference)"),
    )
}


def fusion_settings(profile: str) -> FusionSettings:
    """Settings of a concrete profile; ``auto`` must be resolved to one first."""
    try:
        return SETTINGS[profile]
    except KeyError:
        hint = (" ('auto' is resolved per device before the engine is built)"
                if profile == AUTO else "")
        raise ValueError(
            f"unknown fusion profile {profile!r}{hint}; use one of {', '.join(FUSION_PROFILES)}"
        ) from None


def resolve_fusion_profile(
    requested: str,
    hardware_default: str,
    measured_latency_ms: Mapping[str, float] | None = None,
) -> tuple[str, str]:
    """(profile, why): ``auto`` becomes the profile measured fastest on this device, or,
    before any measurement, the hardware profile's default (set from its memory bandwidth)."""
    if requested != AUTO:
        return fusion_settings(requested).profile, "requested"
    measured = {p: ms for p, ms in (measured_latency_ms or {}).items() if p in SETTINGS}
    if measured:
        best = min(measured, key=measured.__getitem__)
        return best, f"auto: fastest measured on this device ({measured[best]:.2f} ms)"
    return fusion_settings(hardware_default).profile, (
        "auto: no measurement on this device yet; the hardware profile's default "
        f"({hardware_default}, chosen from its memory bandwidth)")


def markdown_table() -> str:
    """The profile table as Markdown (for docs and ``edge-trt`` help)."""
    rows = [
        "| profile | ONNX Runtime level | TensorRT builder opt level | TensorRT marked outputs "
        "| ONNX Runtime CUDA conv layout |",
        "|---|---|---|---|---|",
    ]
    for s in SETTINGS.values():
        marked = [n for n, on in (("BatchNorm", s.trt_mark_batchnorm_outputs),
                                  ("activation", s.trt_mark_activation_outputs)) if on]
        rows.append(f"| {s.profile} | {s.ort_level_name} | {s.trt_builder_optimization_level} "
                    f"| {' + '.join(marked) or 'none'} | {s.ort_cuda_layout.upper()} |")
    return "\n".join(rows)
