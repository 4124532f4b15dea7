"""TensorRT build path: variant ONNX -> strongly typed network -> serialized plan.

The TensorRT module is a parameter, never a module-level import, for three reasons: the
ROS-free core must import on machines without TensorRT; the same code must drive
TensorRT 10, TensorRT 11 and TensorRT-RTX (``tensorrt_rtx_bindings``), whose APIs differ;
and the tests drive it with a recording stand-in. Everything version-specific is
feature-detected (``hasattr``), never decided from version numbers or enum integers:

- strongly typed: pass ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` when the enum has
  it (TensorRT 10; deprecated and ignored in 11). No such member and no ``EXPLICIT_BATCH``
  either means every network is strongly typed (TensorRT 11+). ``EXPLICIT_BATCH`` without
  ``STRONGLY_TYPED`` is a TensorRT older than 9, which would silently run the fp16/int8
  files in fp32: refused.
- precision lives in the variant file (fp16 weights and casts, INT8 as Q/DQ nodes), so no
  precision builder flag (``FP16``/``INT8``, removed in TensorRT 11) and no implicit INT8
  calibrator is ever used. The legacy entropy-calibrator path is deliberately absent.
- progress monitor, profiling verbosity, timing cache, memory pools and DLA are used when
  the module and builder config have them.

Materialised boundaries (fusion profiles ``conservative`` and ``none``): a boundary is the
output tensor of an ONNX node whose op type is in
:data:`~edge_trt_ros.engines.fusion.BATCHNORM_OP_TYPES` (BatchNorm) or
:data:`~edge_trt_ros.engines.fusion.ACTIVATION_OP_TYPES` (activation), plus the ``Mul`` of a
SiLU (``Mul(x, Sigmoid(x))``: the SiLU's output is the activation output; the Sigmoid inside
it is not a boundary of its own). The op types are read from the same ONNX file the parser
reads, and a boundary is found in the parsed network by tensor name: TensorRT's ONNX parser
names the tensor a node produces after the ONNX output name. Layer names and types are not
used to decide, because they do not identify the ONNX op: a BatchNormalization parses to a
``SCALE`` layer named after the node, but other ops parse to ``SCALE`` too; a SiLU's ``Mul``
is an ordinary ``ELEMENTWISE`` layer; a node that becomes several layers names them
``node``, ``node_1``, ... The marked layers' names and types are reported so the fusion
report can show them. An int8 file has its BatchNorms folded into the convolutions already,
so only its activations can be marked.
"""

from __future__ import annotations

import importlib
import logging
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import onnx

from edge_trt_ros.choices import FUSION_PROFILES, PRECISIONS
from edge_trt_ros.engines.fusion import (
    ACTIVATION_OP_TYPES,
    BATCHNORM_OP_TYPES,
    fusion_settings,
)
from edge_trt_ros.errors import EngineError, TrtBuildError
from edge_trt_ros.files import write_atomic

if TYPE_CHECKING:  # the stubs (tensorrt-stubs) type-check calls on TensorRT objects
    import tensorrt as trt

log = logging.getLogger("edge_trt_ros.engines.tensorrt")
trt_log = logging.getLogger("edge_trt_ros.engines.tensorrt.library")

# The injected TensorRT-family module: ``tensorrt``, ``tensorrt_rtx_bindings`` or a stand-in.
TensorRTModule = ModuleType

MAX_OPTIMIZATION_LEVEL = 5
LOGGER_KEEPS = 50  # last errors/warnings kept for error messages and build reports


@dataclass(frozen=True)
class TrtBuildConfig:
    """Every setting a TensorRT build depends on, as one value (one cache key).

    ``precision`` only records what the variant file holds: it never becomes a builder flag.
    ``workspace_bytes`` 0 leaves TensorRT's default (the device's memory). ``max_batch`` and
    ``opt_batch`` shape the optimisation profile when the model's batch dimension is
    dynamic. ``dla_core`` -1 builds for the GPU. ``timing_cache_path`` speeds up rebuilds and
    is not part of the cache key (it does not change what the engine computes).
    """

    precision: str = "fp32"
    fusion_profile: str = "max"
    builder_optimization_level: int = 5
    mark_batchnorm: bool = False
    mark_activation: bool = False
    workspace_bytes: int = 0
    max_batch: int = 1
    opt_batch: int = 1
    dla_core: int = -1
    gpu_fallback: bool = True
    detailed_profiling: bool = True  # the engine inspector then lists each layer's ONNX nodes
    timing_cache_path: str | None = None
    calibration_sha256: str = ""  # the manifest's calibration key; its own cache-key field
    # A plan a newer TensorRT can also run (BuilderFlag.VERSION_COMPATIBLE). It embeds the
    # lean runtime, host code the runtime must be allowed to run, unless exclude_lean_runtime
    # (then the lean runtime must be installed where it runs). Off by default: a plan with
    # host code is loaded only from this package's own cache, with a matching manifest.
    version_compatible: bool = False
    exclude_lean_runtime: bool = False

    def __post_init__(self) -> None:
        problems = []
        if self.precision not in PRECISIONS:
            problems.append(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.fusion_profile not in FUSION_PROFILES:
            problems.append(f"fusion profile {self.fusion_profile!r} is not one of "
                            f"{', '.join(FUSION_PROFILES)} ('auto' is resolved before building)")
        if not 0 <= self.builder_optimization_level <= MAX_OPTIMIZATION_LEVEL:
            problems.append(f"builder_optimization_level {self.builder_optimization_level} "
                            f"is outside 0..{MAX_OPTIMIZATION_LEVEL}")
        if self.workspace_bytes < 0:
            problems.append(f"workspace_bytes {self.workspace_bytes} is negative")
        if not 1 <= self.opt_batch <= self.max_batch:
            problems.append(f"need 1 <= opt_batch ({self.opt_batch}) <= max_batch "
                            f"({self.max_batch})")
        if self.dla_core < -1:
            problems.append(f"dla_core {self.dla_core}: use -1 (GPU) or a DLA core index")
        if self.exclude_lean_runtime and not self.version_compatible:
            problems.append("exclude_lean_runtime only applies to version_compatible plans")
        if problems:
            raise ValueError("invalid TensorRT build config: " + "; ".join(problems))

    @classmethod
    def for_variant(cls, precision: str, fusion_profile: str, **overrides: Any) -> TrtBuildConfig:
        """The config of a (precision, fusion profile) variant, settings from the profile table."""
        profile = fusion_settings(fusion_profile)
        values: dict[str, Any] = {
            "precision": precision,
            "fusion_profile": profile.profile,
            "builder_optimization_level": profile.trt_builder_optimization_level,
            "mark_batchnorm": profile.trt_mark_batchnorm_outputs,
            "mark_activation": profile.trt_mark_activation_outputs,
        }
        values.update(overrides)
        return cls(**values)

    @property
    def host_code(self) -> bool:
        """Whether the plan carries host code (the embedded lean runtime)."""
        return self.version_compatible and not self.exclude_lean_runtime

    def cache_settings(self) -> dict[str, str]:
        """Settings that change the engine, for :class:`~edge_trt_ros.engines.cache.CacheKey`."""
        skip = {"timing_cache_path", "calibration_sha256"}
        return {k: str(v) for k, v in asdict(self).items() if k not in skip}


@dataclass(frozen=True)
class TrtFeatures:
    """What this TensorRT-family module offers, detected by attribute presence."""

    module: str
    version: str
    strongly_typed: str  # "flag": pass STRONGLY_TYPED; "always": no flag, every network is
    progress_monitor: bool
    timing_cache: bool
    memory_pools: bool
    dla: bool
    legacy_precision_flags: bool  # BuilderFlag.FP16/INT8 exist (TensorRT 10); never set
    legacy_calibrator: bool  # IInt8EntropyCalibrator2 exists (TensorRT 10); never used

    @property
    def product(self) -> str:
        """How messages name the library: "TensorRT 10.3.0" or "TensorRT-RTX 1.7.1"."""
        return f"TensorRT{'-RTX' if 'rtx' in self.module else ''} {self.version}"

    def network_flags(self, trt_module: TensorRTModule) -> int:
        if self.strongly_typed == "flag":
            return 1 << int(trt_module.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        return 0


def detect_features(trt_module: TensorRTModule) -> TrtFeatures:
    """Feature-detect the module; refuse one that cannot build strongly typed networks."""
    version = str(getattr(trt_module, "__version__", "unknown"))
    creation = getattr(trt_module, "NetworkDefinitionCreationFlag", None)
    if hasattr(creation, "STRONGLY_TYPED"):
        strongly_typed = "flag"
    elif hasattr(creation, "EXPLICIT_BATCH"):
        raise EngineError(
            f"TensorRT {version} has no strongly typed networks, so it would run the fp16 and "
            "int8 variant files in fp32; use TensorRT 10 or newer (JetPack 6 or newer on "
            "Jetson), or the onnxruntime backend")
    else:
        strongly_typed = "always"
    flags = getattr(trt_module, "BuilderFlag", None)
    return TrtFeatures(
        module=trt_module.__name__,
        version=version,
        strongly_typed=strongly_typed,
        progress_monitor=hasattr(trt_module, "IProgressMonitor"),
        timing_cache=hasattr(trt_module, "ITimingCache"),
        memory_pools=hasattr(getattr(trt_module, "MemoryPoolType", None), "WORKSPACE"),
        dla=hasattr(getattr(trt_module, "DeviceType", None), "DLA"),
        legacy_precision_flags=hasattr(flags, "FP16") or hasattr(flags, "INT8"),
        legacy_calibrator=hasattr(trt_module, "IInt8EntropyCalibrator2"),
    )


def load_tensorrt(name: str = "tensorrt") -> TensorRTModule:
    """Import a TensorRT-family module by name and check it is the library, not just stubs."""
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise EngineError(
            f"TensorRT is not installed ({name}: {exc}). On a Jetson it comes with JetPack "
            "(python3-libnvinfer); on x86 install the tensorrt wheel for your CUDA; or run "
            "with backend:=onnxruntime") from exc
    if not hasattr(module, "Runtime"):
        where = ", ".join(getattr(module, "__path__", [])) or str(getattr(module, "__file__", ""))
        raise EngineError(
            f"'{name}' imports from {where} but is not the TensorRT library (only type stubs "
            "such as tensorrt-stubs are installed there); install TensorRT or use "
            "backend:=onnxruntime")
    return module


def dims_tuple(dims: trt.Dims) -> tuple[int, ...]:
    """A TensorRT Dims as a tuple (Dims iterates by index; the stubs give it no __iter__)."""
    return tuple(int(dims[i]) for i in range(len(dims)))


def backend_name(trt_module: TensorRTModule) -> str:
    return "tensorrt-rtx" if "rtx" in trt_module.__name__ else "tensorrt"



@dataclass(frozen=True)
class MarkedTensor:
    """A BatchNorm/activation output forced to memory, and the layer that writes it."""

    tensor: str
    kind: str  # "batchnorm" | "activation"
    layer: str
    layer_type: str


@dataclass(frozen=True)
class BuildReport:
    """What a build did, for logs, the fusion report and the build check tool."""

    model: str
    backend: str
    version: str
    strongly_typed: str
    settings: dict[str, str]
    marked: list[MarkedTensor] = field(default_factory=list)
    boundaries_missing: list[str] = field(default_factory=list)
    dynamic_batch: bool = False
    timing_cache: str = "off"
    seconds: float = 0.0
    plan_bytes: int = 0
    warnings: list[str] = field(default_factory=list)
    # layer type -> count in the built engine, from the builder's detailed verbose listing
    # (None where the builder logged none)
    engine_layers: dict[str, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# The built engine's layers, as the builder lists them at VERBOSE with DETAILED profiling:
# TensorRT "Engine Layer Information:" then "Layer(TYPE): name, ..." per layer; TensorRT-RTX
# (Myelin) "Layers:" then "Name: name, LayerType: TYPE, ..." per kernel.
_LAYER_LISTINGS = (("Engine Layer Information:", re.compile(r"^Layer\(([^)]+)\):")),
                   ("Layers:", re.compile(r"^Name: .*?, LayerType: ([^,]+),")))


def engine_layer_types(message: str) -> dict[str, int] | None:
    """Layer type -> count from one builder log message that lists the engine's layers."""
    for header, pattern in _LAYER_LISTINGS:
        if message.startswith(header):
            counts: dict[str, int] = {}
            for line in message.splitlines()[1:]:
                match = pattern.match(line.strip())
                if match:
                    counts[match.group(1)] = counts.get(match.group(1), 0) + 1
            return counts or None
    return None


@dataclass(frozen=True)
class BuildOutcome:
    plan: bytes
    report: BuildReport


def make_logger(trt_module: TensorRTModule) -> Any:
    """An ILogger that routes TensorRT's messages to Python logging and keeps the errors.

    The subclass is created here, not at module level, because the base class comes from
    the injected module.
    """
    base = trt_module.ILogger
    levels = {"INTERNAL_ERROR": logging.ERROR, "ERROR": logging.ERROR,
              "WARNING": logging.WARNING, "INFO": logging.DEBUG, "VERBOSE": logging.DEBUG - 5}

    class TensorRTLogger(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)
            self.errors: list[str] = []
            self.warnings: list[str] = []
            self.engine_layers: dict[str, int] | None = None  # the last listing seen

        def log(self, severity: Any, msg: str) -> None:
            level = levels.get(getattr(severity, "name", str(severity)), logging.INFO)
            if level < logging.INFO:
                self.engine_layers = engine_layer_types(msg) or self.engine_layers
            kept = (self.errors if level >= logging.ERROR
                    else self.warnings if level == logging.WARNING else None)
            if kept is not None:  # the runtime's logger lives as long as the engine: bounded
                kept.append(msg)
                del kept[:-LOGGER_KEEPS]
            if trt_log.isEnabledFor(level):
                trt_log.log(level, "TensorRT: %s", msg)

    return TensorRTLogger()


def make_progress_monitor(trt_module: TensorRTModule, label: str, *,
                          cancel: threading.Event | None = None,
                          interval_s: float = 10.0) -> Any | None:
    """An IProgressMonitor logging the builder's phases, or None where the module has none.

    Top-level phases log at INFO, nested ones at DEBUG; step progress at most every
    ``interval_s``. Setting ``cancel`` stops the build at the next step.
    """
    base: Any = getattr(trt_module, "IProgressMonitor", None)
    if base is None:
        return None

    class BuildProgress(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)
            self._lock = threading.Lock()  # TensorRT may call from several threads
            self._phases: dict[str, tuple[bool, int, float]] = {}
            self._last_step_log = time.monotonic()

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            with self._lock:
                self._phases[phase_name] = (parent_phase is None, num_steps, time.monotonic())
            level = logging.INFO if parent_phase is None else logging.DEBUG
            log.log(level, "%s: %s (%d steps)", label, phase_name, num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            now = time.monotonic()
            with self._lock:
                steps = self._phases.get(phase_name, (False, 0, now))[1]
                due = now - self._last_step_log >= interval_s
                if due:
                    self._last_step_log = now
            if due:
                log.info("%s: %s step %d/%d", label, phase_name, step + 1, steps)
            return not (cancel is not None and cancel.is_set())

        def phase_finish(self, phase_name: str) -> None:
            now = time.monotonic()
            with self._lock:
                top, _, started = self._phases.pop(phase_name, (False, 0, now))
            log.log(logging.INFO if top else logging.DEBUG, "%s: %s done in %.1f s",
                    label, phase_name, now - started)

    return BuildProgress()


def boundary_tensors(model: onnx.ModelProto, *, batchnorm: bool,
                     activation: bool) -> dict[str, str]:
    """ONNX tensor name -> "batchnorm" | "activation", in graph order (rule: module doc)."""
    graph = model.graph
    nodes = list(graph.node)
    producer = {out: i for i, node in enumerate(nodes) for out in node.output if out}
    silu_mul: set[int] = set()
    silu_sigmoid: set[int] = set()
    for i, node in enumerate(nodes):
        if node.op_type != "Mul" or len(node.input) != 2:
            continue
        a, b = node.input
        for x, s in ((a, b), (b, a)):
            j = producer.get(s)
            if j is not None and nodes[j].op_type == "Sigmoid" and nodes[j].input[:1] == [x]:
                silu_mul.add(i)
                silu_sigmoid.add(j)
    graph_io = {v.name for v in graph.input} | {v.name for v in graph.output}
    found: dict[str, str] = {}
    for i, node in enumerate(nodes):
        if not node.output or not node.output[0] or node.output[0] in graph_io:
            continue
        if batchnorm and node.op_type in BATCHNORM_OP_TYPES:
            found[node.output[0]] = "batchnorm"
        elif activation and (i in silu_mul or (node.op_type in ACTIVATION_OP_TYPES
                                               and i not in silu_sigmoid)):
            found[node.output[0]] = "activation"
    return found


def mark_boundaries(network: trt.INetworkDefinition,
                    boundaries: Mapping[str, str]) -> tuple[list[MarkedTensor], list[str]]:
    """Mark the boundary tensors as network outputs; (marked, boundaries not found)."""
    marked: list[MarkedTensor] = []
    seen: set[str] = set()
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        for j in range(layer.num_outputs):
            tensor = layer.get_output(j)
            kind = boundaries.get(tensor.name)
            if kind is None or tensor.name in seen or tensor.is_network_output:
                continue
            network.mark_output(tensor)
            seen.add(tensor.name)
            marked.append(MarkedTensor(tensor.name, kind, layer.name,
                                       getattr(layer.type, "name", str(layer.type))))
    missing = [name for name in boundaries if name not in seen]
    return marked, missing


def _parser_messages(parser: trt.OnnxParser) -> list[str]:
    messages = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        node = getattr(err, "node_name", None)
        op = getattr(err, "node_operator", None)
        desc = err.desc() if hasattr(err, "desc") else str(err)
        where = f"node {node()!r} ({op()}): " if callable(node) and callable(op) and node() else ""
        messages.append(f"{where}{desc}")
    return messages


def _batch_profile(trt_module: TensorRTModule, builder: trt.Builder,
                   builder_config: trt.IBuilderConfig, network: trt.INetworkDefinition,
                   config: TrtBuildConfig) -> bool:
    """Add an optimisation profile for a dynamic batch dimension; True when one was added."""
    dynamic: list[tuple[str, list[int]]] = []
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shape = list(dims_tuple(tensor.shape))
        if any(d < 0 for d in shape[1:]):
            raise TrtBuildError(
                f"input {tensor.name!r} has dynamic dimensions {shape} beyond the batch; "
                "re-export the model with a fixed image size (imgsz)", stage="configure")
        if shape and shape[0] < 0:
            dynamic.append((tensor.name, shape[1:]))
    if not dynamic:
        return False
    profile = builder.create_optimization_profile()
    for name, rest in dynamic:
        profile.set_shape(name, trt_module.Dims([1, *rest]),
                          trt_module.Dims([config.opt_batch, *rest]),
                          trt_module.Dims([config.max_batch, *rest]))
    builder_config.add_optimization_profile(profile)
    return True


def _configure(trt_module: TensorRTModule, features: TrtFeatures, builder: trt.Builder,
               builder_config: trt.IBuilderConfig, config: TrtBuildConfig) -> None:
    """Optimisation level, workspace, profiling verbosity and DLA on the builder config."""
    if hasattr(builder_config, "builder_optimization_level"):
        builder_config.builder_optimization_level = config.builder_optimization_level
    else:
        log.warning("%s has no builder optimisation level; fusion profile %s only changes "
                    "the marked outputs", features.product, config.fusion_profile)
    if config.workspace_bytes and features.memory_pools:
        builder_config.set_memory_pool_limit(trt_module.MemoryPoolType.WORKSPACE,
                                             config.workspace_bytes)
    if config.detailed_profiling and hasattr(trt_module, "ProfilingVerbosity"):
        builder_config.profiling_verbosity = trt_module.ProfilingVerbosity.DETAILED
    for wanted, flag in ((config.version_compatible, "VERSION_COMPATIBLE"),
                         (config.exclude_lean_runtime, "EXCLUDE_LEAN_RUNTIME")):
        if not wanted:
            continue
        member = getattr(getattr(trt_module, "BuilderFlag", None), flag, None)
        if member is None:
            raise TrtBuildError(f"{features.product} has no BuilderFlag.{flag} (TensorRT 8.6+); "
                                "build without version_compatible", stage="configure")
        builder_config.set_flag(member)
    if config.dla_core < 0:
        return
    cores = int(getattr(builder, "num_DLA_cores", 0) or 0)
    if not features.dla or config.dla_core >= cores:
        raise TrtBuildError(
            f"DLA core {config.dla_core} requested but this device has {cores} DLA core(s) "
            f"({features.product}); set dla_core:=-1 to build for the GPU",
            stage="configure")
    if config.precision == "fp32":
        if not config.gpu_fallback:
            raise TrtBuildError(
                "DLA runs only FP16/INT8 layers: the fp32 variant needs gpu_fallback, or use "
                "the fp16 or int8 variant on the DLA", stage="configure")
        log.warning("DLA runs only FP16/INT8 layers: every layer of the fp32 variant will "
                    "fall back to the GPU; use the fp16 or int8 variant on the DLA")
    builder_config.default_device_type = trt_module.DeviceType.DLA
    builder_config.DLA_core = config.dla_core
    if config.gpu_fallback:
        builder_config.set_flag(trt_module.BuilderFlag.GPU_FALLBACK)


def _load_timing_cache(builder_config: trt.IBuilderConfig, path: Path) -> str:
    if path.is_symlink():  # the cache directory's files are never read through a link
        log.warning("timing cache %s is a symlink; ignoring it (starting an empty one)", path)
        path.unlink()
    blob = path.read_bytes() if path.is_file() else b""
    try:
        cache = builder_config.create_timing_cache(blob)
    except Exception as exc:  # a cache from another TensorRT version raises or returns None
        log.warning("timing cache %s is unusable (%s); starting an empty one", path, exc)
        cache = None
    if cache is None or not builder_config.set_timing_cache(cache, False):
        if blob:
            log.warning("timing cache %s was written for another GPU or TensorRT; starting "
                        "an empty one (it will be overwritten)", path)
        builder_config.set_timing_cache(builder_config.create_timing_cache(b""), False)
        return "new"
    return f"read {len(blob)} bytes" if blob else "new"


def _save_timing_cache(builder_config: trt.IBuilderConfig, path: Path) -> None:
    """Write the updated timing cache atomically; a failure costs the next build time only."""
    try:
        blob = bytes(builder_config.get_timing_cache().serialize())
        write_atomic(path, lambda tmp: tmp.write_bytes(blob))
    except Exception as exc:  # the plan is good; never fail a build over its timing cache
        log.warning("could not save the timing cache %s (%s); the next build re-times "
                    "its layers", path, exc)


def build_serialized(
    trt_module: TensorRTModule,
    model_path: str | Path,
    config: TrtBuildConfig,
    *,
    cancel: threading.Event | None = None,
) -> BuildOutcome:
    """Parse the variant file, apply the config, build; the serialized plan and a report.

    Raises :class:`TrtBuildError` (an :class:`EngineError`) carrying the parser or builder
    messages when TensorRT refuses the file or the settings.
    """
    path = Path(model_path)
    if not path.is_file():
        raise TrtBuildError(f"variant file {path} not found; run `edge-trt variants`",
                            stage="parse")
    features = detect_features(trt_module)
    label = f"TensorRT build of {path.name} ({config.precision}, fusion {config.fusion_profile})"
    logger = make_logger(trt_module)
    builder: trt.Builder = trt_module.Builder(logger)
    network: trt.INetworkDefinition = builder.create_network(features.network_flags(trt_module))
    parser: trt.OnnxParser = trt_module.OnnxParser(network, logger)
    if not parser.parse_from_file(str(path)):
        errors = _parser_messages(parser) or logger.errors[-5:]
        raise TrtBuildError(
            f"{features.product} cannot parse {path}: {'; '.join(errors) or 'no detail'}"
            ". Rebuild the variant (`edge-trt variants`) or report the node named above",
            stage="parse", parser_errors=errors, builder_errors=list(logger.errors))

    marked: list[MarkedTensor] = []
    missing: list[str] = []
    if config.mark_batchnorm or config.mark_activation:
        boundaries = boundary_tensors(onnx.load(str(path), load_external_data=False),
                                      batchnorm=config.mark_batchnorm,
                                      activation=config.mark_activation)
        marked, missing = mark_boundaries(network, boundaries)
        log.log(logging.WARNING if missing else logging.INFO,
                "%s: materialising %d BatchNorm and %d activation outputs as engine outputs%s",
                label, sum(m.kind == "batchnorm" for m in marked),
                sum(m.kind == "activation" for m in marked),
                f" ({len(missing)} not found in the parsed network, so left fusable: "
                f"{missing[:5]})" if missing else "")

    builder_config: trt.IBuilderConfig = builder.create_builder_config()
    _configure(trt_module, features, builder, builder_config, config)
    dynamic = _batch_profile(trt_module, builder, builder_config, network, config)
    timing = "off"
    cache_path = Path(config.timing_cache_path) if config.timing_cache_path else None
    if cache_path is not None:
        timing = (_load_timing_cache(builder_config, cache_path) if features.timing_cache
                  else "unsupported")
    monitor = make_progress_monitor(trt_module, label, cancel=cancel)
    if monitor is not None:
        builder_config.progress_monitor = monitor

    log.info("building TensorRT engine for %s (%s, fusion profile %s, optimisation level %d%s):"
             " this takes minutes on a Jetson; the plan is cached, so the next start loads "
             "it in seconds",
             path.name, config.precision, config.fusion_profile, config.builder_optimization_level,
             f", DLA core {config.dla_core}" if config.dla_core >= 0 else "")
    started = time.monotonic()
    plan = builder.build_serialized_network(network, builder_config)
    seconds = time.monotonic() - started
    if plan is None:
        if cancel is not None and cancel.is_set():
            raise TrtBuildError(f"{label} cancelled", stage="build")
        raise TrtBuildError(
            f"{features.product} could not build {path.name}: "
            f"{'; '.join(logger.errors[-5:]) or 'no error message'}. Check the workspace "
            "limit (workspace_bytes), free GPU memory and, for DLA, gpu_fallback",
            stage="build", builder_errors=list(logger.errors))
    blob = bytes(plan)
    if cache_path is not None and features.timing_cache:
        _save_timing_cache(builder_config, cache_path)
    log.info("%s: built in %.0f s (%.1f MB plan)", label, seconds, len(blob) / 1e6)
    report = BuildReport(
        model=str(path), backend=backend_name(trt_module), version=features.version,
        strongly_typed=features.strongly_typed, settings=config.cache_settings(),
        marked=marked, boundaries_missing=missing, dynamic_batch=dynamic,
        timing_cache=timing, seconds=round(seconds, 3), plan_bytes=len(blob),
        warnings=list(logger.warnings), engine_layers=logger.engine_layers)
    return BuildOutcome(blob, report)
