"""A RECORDING STAND-IN for the ``tensorrt`` module and the CUDA helpers - not TensorRT.

It exists so the control flow of :mod:`edge_trt_ros.engines.tensorrt_build` and
:mod:`edge_trt_ros.engines.tensorrt_backend` can be tested without a GPU or TensorRT. It
mimics the API surface those modules use (names, enums, "returns None on failure"
conventions) in several flavours - ``"10"`` (TensorRT 10: EXPLICIT_BATCH and STRONGLY_TYPED,
FP16/INT8 builder flags, IInt8EntropyCalibrator2), ``"11"`` (STRONGLY_TYPED only, with a
different enum value; no FP16/INT8 flags, no calibrator), ``"11-noflag"`` (no creation flag
at all) and ``"8"`` (EXPLICIT_BATCH only) - and appends every call to ``World.calls`` so
tests can assert on what the backend asked for.

What it does NOT do: optimise, time, or compute a network. "Parsing" reads the ONNX graph
into one layer per node (named after the node, outputs named after the ONNX tensors, as
TensorRT's parser does); "building" serialises a JSON description; "fusion" groups
consecutive layers until a marked output breaks the group; "execution" writes the sum of
the input batch into every output element. Device memory is a dict of bytearrays.
"""

from __future__ import annotations

import enum
import json
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edge_trt_ros.errors import CudaError

PLAN_MAGIC = b"STANDIN-TRT-PLAN\n"

_OP_LAYER_TYPES = {
    "Conv": "CONVOLUTION", "BatchNormalization": "SCALE", "Sigmoid": "ACTIVATION",
    "Relu": "ACTIVATION", "Mul": "ELEMENTWISE", "Add": "ELEMENTWISE", "Reshape": "SHUFFLE",
    "Split": "SLICE", "Concat": "CONCATENATION", "QuantizeLinear": "QUANTIZE",
    "DequantizeLinear": "DEQUANTIZE",
}
_NP_TO_DATATYPE = {np.dtype(np.float32): "FLOAT", np.dtype(np.float16): "HALF",
                   np.dtype(np.int8): "INT8", np.dtype(np.int32): "INT32",
                   np.dtype(np.int64): "INT64", np.dtype(np.uint8): "UINT8",
                   np.dtype(np.bool_): "BOOL"}


@dataclass
class World:
    """Shared state of one stand-in TensorRT + CUDA pair: the call log and device memory."""

    calls: list[tuple[Any, ...]] = field(default_factory=list)
    memory: dict[int, bytearray] = field(default_factory=dict)
    allocations: int = 0
    next_handle: int = 0x7000

    def record(self, *call: Any) -> None:
        self.calls.append(call)

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == name]

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]

    def handle(self) -> int:
        self.next_handle += 0x100
        return self.next_handle


def _enum(name: str, members: list[str], start: int = 0) -> type[enum.IntEnum]:
    return enum.IntEnum(name, [(m, i) for i, m in enumerate(members, start)])  # type: ignore[return-value]


class Dims(tuple):  # type: ignore[type-arg]
    def __new__(cls, shape: Any = ()) -> Dims:
        return super().__new__(cls, (int(d) for d in shape))


def make_tensorrt(
    world: World,
    flavour: str = "10",
    *,
    version: str | None = None,
    dla_cores: int = 0,
    parse_errors: list[tuple[str, str, str]] | None = None,
    build_fails: bool = False,
    progress_monitor: bool = True,
) -> types.ModuleType:
    """A stand-in ``tensorrt`` module of the given flavour, recording into ``world``."""
    mod: Any = types.ModuleType("tensorrt")
    mod.__version__ = version or {"10": "10.13.0", "11": "11.0.0", "11-noflag": "11.4.0",
                                  "8": "8.6.1"}[flavour]
    creation = {"10": ["EXPLICIT_BATCH", "STRONGLY_TYPED", "PREFER_AOT_PYTHON_PLUGINS"],
                "11": ["STRONGLY_TYPED", "PREFER_AOT_PYTHON_PLUGINS"],
                "11-noflag": ["PREFER_AOT_PYTHON_PLUGINS"],
                "8": ["EXPLICIT_BATCH", "EXPLICIT_PRECISION"]}[flavour]
    mod.NetworkDefinitionCreationFlag = _enum("NetworkDefinitionCreationFlag", creation)
    legacy = flavour in ("10", "8")
    flags = (["FP16", "INT8"] if legacy else []) + [
        "DEBUG", "GPU_FALLBACK", "REFIT", "DISABLE_TIMING_CACHE", "TF32", "SPARSE_WEIGHTS"]
    mod.BuilderFlag = _enum("BuilderFlag", flags)
    mod.DeviceType = _enum("DeviceType", ["GPU", "DLA"])
    mod.MemoryPoolType = _enum("MemoryPoolType", ["WORKSPACE", "DLA_MANAGED_SRAM",
                                                  "DLA_LOCAL_DRAM", "DLA_GLOBAL_DRAM"])
    mod.ProfilingVerbosity = _enum("ProfilingVerbosity", ["LAYER_NAMES_ONLY", "NONE", "DETAILED"])
    mod.LayerInformationFormat = _enum("LayerInformationFormat", ["ONELINE", "JSON"])
    mod.LayerType = _enum("LayerType", sorted(set(_OP_LAYER_TYPES.values()) | {"IDENTITY"}))
    mod.TensorIOMode = _enum("TensorIOMode", ["NONE", "INPUT", "OUTPUT"])
    mod.DataType = _enum("DataType", ["FLOAT", "HALF", "INT8", "INT32", "BOOL", "UINT8",
                                      "INT64"])
    mod.Dims = Dims

    def nptype(dtype: Any) -> type:
        return {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32,
                "BOOL": np.bool_, "UINT8": np.uint8, "INT64": np.int64}[dtype.name]

    mod.nptype = nptype

    class ILogger:
        Severity: Any = _enum("Severity", ["INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE"])

        def __init__(self) -> None:
            world.record("ILogger.__init__", type(self).__name__)

        def log(self, severity: Any, msg: str) -> None:
            raise NotImplementedError

    mod.ILogger = ILogger

    class IProfiler:
        def __init__(self) -> None:
            world.record("IProfiler.__init__", type(self).__name__)

    mod.IProfiler = IProfiler
    if progress_monitor:
        class IProgressMonitor:
            def __init__(self) -> None:
                world.record("IProgressMonitor.__init__", type(self).__name__)

        mod.IProgressMonitor = IProgressMonitor
    if legacy:
        class IInt8EntropyCalibrator2:
            pass

        mod.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2

    class ITimingCache:
        def __init__(self, entries: list[str]) -> None:
            self.entries = entries

        def serialize(self) -> bytes:
            return b"TC" + json.dumps(self.entries).encode()

    mod.ITimingCache = ITimingCache

    class ITensor:
        def __init__(self, name: str, shape: tuple[int, ...], dtype: Any) -> None:
            self.name, self.shape, self.dtype = name, Dims(shape), dtype
            self.is_network_input = False
            self.is_network_output = False

    class ILayer:
        def __init__(self, name: str, type_: Any, outputs: list[ITensor]) -> None:
            self.name, self.type, self._outputs = name, type_, outputs
            self.metadata = f"[ONNX Layer: {name}]"

        @property
        def num_outputs(self) -> int:
            return len(self._outputs)

        def get_output(self, index: int) -> ITensor:
            return self._outputs[index]

    class INetworkDefinition:
        def __init__(self, flags: int) -> None:
            self.flags = flags
            self.layers: list[ILayer] = []
            self.inputs: list[ITensor] = []
            self.outputs: list[ITensor] = []

        num_layers = property(lambda self: len(self.layers))
        num_inputs = property(lambda self: len(self.inputs))
        num_outputs = property(lambda self: len(self.outputs))

        def get_layer(self, i: int) -> ILayer:
            return self.layers[i]

        def get_input(self, i: int) -> ITensor:
            return self.inputs[i]

        def get_output(self, i: int) -> ITensor:
            return self.outputs[i]

        def mark_output(self, tensor: ITensor) -> None:
            world.record("mark_output", tensor.name)
            tensor.is_network_output = True
            self.outputs.append(tensor)

    class ParserError:
        def __init__(self, node: str, op: str, desc: str) -> None:
            self._node, self._op, self._desc = node, op, desc

        def node_name(self) -> str:
            return self._node

        def node_operator(self) -> str:
            return self._op

        def desc(self) -> str:
            return self._desc

        def code(self) -> int:
            return 8

    class OnnxParser:
        def __init__(self, network: INetworkDefinition, logger: Any) -> None:
            self.network, self.logger = network, logger
            self.errors: list[ParserError] = []

        @property
        def num_errors(self) -> int:
            return len(self.errors)

        def get_error(self, i: int) -> ParserError:
            return self.errors[i]

        def parse_from_file(self, path: str) -> bool:
            world.record("parse_from_file", path)
            if parse_errors:
                self.errors = [ParserError(*e) for e in parse_errors]
                return False
            _parse_into(self.network, Path(path), mod, ITensor, ILayer)
            return True

    class IOptimizationProfile:
        def __init__(self) -> None:
            self.shapes: dict[str, tuple[Dims, Dims, Dims]] = {}

        def set_shape(self, name: str, min: Any, opt: Any, max: Any) -> None:  # noqa: A002
            world.record("set_shape", name, tuple(min), tuple(opt), tuple(max))
            self.shapes[name] = (Dims(min), Dims(opt), Dims(max))

    class IBuilderConfig:
        timing: Any
        profiles: list[Any]
        progress_monitor: Any
        _public = ("builder_optimization_level", "default_device_type", "DLA_core",
                   "profiling_verbosity", "progress_monitor")

        def __init__(self) -> None:
            object.__setattr__(self, "builder_optimization_level", 3)
            object.__setattr__(self, "default_device_type", mod.DeviceType.GPU)
            object.__setattr__(self, "DLA_core", -1)
            object.__setattr__(self, "profiling_verbosity",
                               mod.ProfilingVerbosity.LAYER_NAMES_ONLY)
            object.__setattr__(self, "progress_monitor", None)
            object.__setattr__(self, "profiles", [])
            object.__setattr__(self, "timing", None)

        def __setattr__(self, name: str, value: Any) -> None:
            if name not in self._public:
                raise AttributeError(f"stand-in IBuilderConfig has no attribute {name!r}")
            world.record("config.set", name, value)
            object.__setattr__(self, name, value)

        def set_flag(self, flag: Any) -> None:
            world.record("set_flag", flag.name)

        def set_memory_pool_limit(self, pool: Any, size: int) -> None:
            world.record("set_memory_pool_limit", pool.name, size)

        def create_timing_cache(self, blob: bytes) -> ITimingCache | None:
            world.record("create_timing_cache", bytes(blob))
            if not blob:
                return ITimingCache([])
            if not bytes(blob).startswith(b"TC"):
                return None
            return ITimingCache(json.loads(bytes(blob)[2:]))

        def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
            world.record("set_timing_cache", len(cache.entries), ignore_mismatch)
            object.__setattr__(self, "timing", cache)
            return True

        def get_timing_cache(self) -> ITimingCache:
            return self.timing

        def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
            world.record("add_optimization_profile", dict(profile.shapes))
            self.profiles.append(profile)
            return len(self.profiles) - 1

    class Builder:
        def __init__(self, logger: Any) -> None:
            world.record("Builder", type(logger).__name__)
            self.logger = logger
            self.num_DLA_cores = dla_cores

        def create_network(self, flags: int = 0) -> INetworkDefinition:
            world.record("create_network", flags)
            return INetworkDefinition(flags)

        def create_builder_config(self) -> IBuilderConfig:
            return IBuilderConfig()

        def create_optimization_profile(self) -> IOptimizationProfile:
            return IOptimizationProfile()

        def build_serialized_network(self, network: INetworkDefinition,
                                     config: IBuilderConfig) -> bytes | None:
            world.record("build_serialized_network", network.num_layers)
            monitor = config.progress_monitor
            if monitor is not None:
                monitor.phase_start("Building engine", None, 2)
                monitor.phase_start("Tactic search", "Building engine", 3)
                for step in range(3):
                    if not monitor.step_complete("Tactic search", step):
                        monitor.phase_finish("Tactic search")
                        monitor.phase_finish("Building engine")
                        return None
                monitor.phase_finish("Tactic search")
                monitor.step_complete("Building engine", 0)
                monitor.phase_finish("Building engine")
            if build_fails:
                self.logger.log(ILogger.Severity.ERROR,
                                "stand-in: insufficient workspace memory for tactic X")
                return None
            if config.timing is not None:
                config.timing.entries.append(f"tactics-{network.num_layers}")
            return _serialize(network, config, mod.__version__)

    class IExecutionContext:
        def __init__(self, engine: ICudaEngine) -> None:
            self.engine = engine
            self.addresses: dict[str, int] = {}
            self.input_shapes = {t["name"]: Dims(t["shape"]) for t in engine.io
                                 if t["mode"] == "INPUT"}
            self.profiler: Any = None

        def set_input_shape(self, name: str, shape: Any) -> bool:
            world.record("set_input_shape", name, tuple(shape))
            lo, _, hi = self.engine.profile(name)
            ok = all(a <= s <= b for a, s, b in zip(lo, tuple(shape), hi, strict=True))
            if ok:
                self.input_shapes[name] = Dims(shape)
            return ok

        def get_tensor_shape(self, name: str) -> Dims:
            spec = self.engine.spec(name)
            if spec["mode"] == "INPUT":
                return self.input_shapes[name]
            batch = next(iter(self.input_shapes.values()))[0]
            return Dims([batch if d < 0 else d for d in spec["shape"]])

        def set_tensor_address(self, name: str, ptr: int) -> bool:
            world.record("set_tensor_address", name, ptr)
            self.addresses[name] = ptr
            return True

        def execute_async_v3(self, stream_handle: int) -> bool:
            world.record("execute_async_v3", stream_handle)
            (in_name, in_shape), = self.input_shapes.items()
            dtype = np.dtype(nptype(getattr(mod.DataType, self.engine.spec(in_name)["dtype"])))
            count = int(np.prod(in_shape))
            data = np.frombuffer(world.memory[self.addresses[in_name]], dtype)[:count]
            value = float(data.sum())
            for spec in self.engine.io:
                if spec["mode"] != "OUTPUT":
                    continue
                shape = self.get_tensor_shape(spec["name"])
                out_dtype = np.dtype(nptype(getattr(mod.DataType, spec["dtype"])))
                blob = np.full(shape, value, out_dtype).tobytes()
                world.memory[self.addresses[spec["name"]]][: len(blob)] = blob
            if self.profiler is not None:
                for layer in self.engine.layers:
                    self.profiler.report_layer_time(layer["Name"], 0.5)
            return True

    class EngineInspector:
        def __init__(self, engine: ICudaEngine) -> None:
            self.engine = engine

        def get_engine_information(self, fmt: Any) -> str:
            world.record("get_engine_information", fmt.name)
            layers: list[Any] = self.engine.layers
            if self.engine.verbosity != "DETAILED":
                layers = [layer["Name"] for layer in layers]
            return json.dumps({"Layers": layers,
                               "Bindings": [t["name"] for t in self.engine.io]})

    class ICudaEngine:
        def __init__(self, desc: dict[str, Any]) -> None:
            self.io: list[dict[str, Any]] = desc["io"]
            self.layers: list[dict[str, Any]] = desc["layers"]
            self.verbosity = desc["verbosity"]

        def spec(self, name: str) -> dict[str, Any]:
            return next(t for t in self.io if t["name"] == name)

        def profile(self, name: str) -> list[Dims]:
            spec = self.spec(name)
            return [Dims(s) for s in spec.get("profile") or [spec["shape"]] * 3]

        @property
        def num_io_tensors(self) -> int:
            return len(self.io)

        def get_tensor_name(self, i: int) -> str:
            return str(self.io[i]["name"])

        def get_tensor_mode(self, name: str) -> Any:
            return getattr(mod.TensorIOMode, self.spec(name)["mode"])

        def get_tensor_shape(self, name: str) -> Dims:
            return Dims(self.spec(name)["shape"])

        def get_tensor_dtype(self, name: str) -> Any:
            return getattr(mod.DataType, self.spec(name)["dtype"])

        def get_tensor_profile_shape(self, name: str, index: int) -> list[Dims]:
            return self.profile(name)

        def create_execution_context(self) -> IExecutionContext:
            world.record("create_execution_context")
            return IExecutionContext(self)

        def create_engine_inspector(self) -> EngineInspector:
            return EngineInspector(self)

    class Runtime:
        def __init__(self, logger: Any) -> None:
            world.record("Runtime", type(logger).__name__)
            self.logger = logger
            self._dla_core = -1

        @property
        def DLA_core(self) -> int:  # noqa: N802 - TensorRT's name
            return self._dla_core

        @DLA_core.setter
        def DLA_core(self, core: int) -> None:  # noqa: N802
            world.record("Runtime.DLA_core", core)
            self._dla_core = core

        def deserialize_cuda_engine(self, blob: bytes) -> ICudaEngine | None:
            world.record("deserialize_cuda_engine", len(blob))
            blob = bytes(blob)
            desc = None
            if blob.startswith(PLAN_MAGIC):
                try:
                    desc = json.loads(blob[len(PLAN_MAGIC):])
                except ValueError:
                    desc = None
            if desc is None or desc.get("version") != mod.__version__:
                self.logger.log(ILogger.Severity.ERROR, "stand-in: the engine plan file is not "
                                "compatible with this version of TensorRT")
                return None
            return ICudaEngine(desc)

    for cls in (ITensor, ILayer, INetworkDefinition, OnnxParser, IOptimizationProfile,
                IBuilderConfig, Builder, IExecutionContext, ICudaEngine, Runtime,
                EngineInspector, ParserError):
        setattr(mod, cls.__name__, cls)
    return mod


def _parse_into(network: Any, path: Path, mod: types.ModuleType, tensor_cls: Any,
                layer_cls: Any) -> None:
    """ONNX graph -> one stand-in layer per node, tensors named after the ONNX tensors."""
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    graph = model.graph
    infos = {v.name: v for v in [*graph.input, *graph.value_info, *graph.output]}

    def shape_of(name: str) -> tuple[int, ...]:
        dims = infos[name].type.tensor_type.shape.dim if name in infos else []
        return tuple(d.dim_value if d.HasField("dim_value") else -1 for d in dims)

    def dtype_of(name: str) -> Any:
        elem = infos[name].type.tensor_type.elem_type if name in infos else onnx.TensorProto.FLOAT
        np_dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem))
        return getattr(mod.DataType, _NP_TO_DATATYPE[np_dtype])

    initializers = {i.name for i in graph.initializer}
    for value in graph.input:
        if value.name in initializers:
            continue
        tensor = tensor_cls(value.name, shape_of(value.name), dtype_of(value.name))
        tensor.is_network_input = True
        network.inputs.append(tensor)
    by_name: dict[str, Any] = {}
    for i, node in enumerate(graph.node):
        outputs = [tensor_cls(o, shape_of(o), dtype_of(o)) for o in node.output if o]
        by_name.update((t.name, t) for t in outputs)
        layer_type = getattr(mod.LayerType, _OP_LAYER_TYPES.get(node.op_type, "IDENTITY"))
        network.layers.append(layer_cls(node.name or f"{node.op_type}_{i}", layer_type, outputs))
    for value in graph.output:
        tensor = by_name[value.name]
        tensor.is_network_output = True
        network.outputs.append(tensor)


def _serialize(network: Any, config: Any, version: str) -> bytes:
    """The stand-in plan: I/O tensors, profiles, and layers "fused" until a marked output."""
    profile = config.profiles[0].shapes if config.profiles else {}
    io = []
    for t in network.inputs:
        spec: dict[str, Any] = {"name": t.name, "mode": "INPUT", "shape": list(t.shape),
                                "dtype": t.dtype.name}
        if t.name in profile:
            spec["profile"] = [list(s) for s in profile[t.name]]
        io.append(spec)
    io += [{"name": t.name, "mode": "OUTPUT", "shape": list(t.shape), "dtype": t.dtype.name}
           for t in network.outputs]
    groups: list[list[Any]] = [[]]
    for layer in network.layers:
        groups[-1].append(layer)
        if any(layer.get_output(j).is_network_output for j in range(layer.num_outputs)):
            groups.append([])
    layers = [{"Name": " + ".join(layer.name for layer in g),
               "LayerType": "Fused" if len(g) > 1 else g[0].type.name,
               "Metadata": "\x1e".join(layer.metadata for layer in g),
               "Outputs": [{"Name": g[-1].get_output(0).name,
                            "Dimensions": list(g[-1].get_output(0).shape),
                            "Format/Datatype": "Row major linear FP32 format"}]}
              for g in groups if g]
    verbosity = config.profiling_verbosity.name
    desc = {"version": version, "io": io, "layers": layers, "verbosity": verbosity}
    return PLAN_MAGIC + json.dumps(desc).encode()


def make_cuda(world: World, *, available: bool = True,
              identity: str = "Stand-in GPU (sm_87)") -> types.ModuleType:
    """A stand-in for :mod:`edge_trt_ros.gpu.runtime` with the same names, on host memory."""
    mod: Any = types.ModuleType("edge_trt_ros.gpu.runtime")

    def check(result: Any) -> Any:
        return result

    class Stream:
        def __init__(self, device: int = 0) -> None:
            self.handle = world.handle()
            world.record("Stream", self.handle, device)

        def synchronize(self) -> None:
            world.record("synchronize", self.handle)

        def close(self) -> None:
            world.record("Stream.close", self.handle)

    class DeviceBuffer:
        def __init__(self, nbytes: int, device: int = 0) -> None:
            self.ptr, self.nbytes = world.handle(), nbytes
            world.memory[self.ptr] = bytearray(nbytes)
            world.allocations += 1
            world.record("DeviceBuffer", nbytes, device)

        def close(self) -> None:
            world.memory.pop(self.ptr, None)
            world.record("DeviceBuffer.close", self.ptr)

    class PinnedBuffer:
        def __init__(self, shape: Any, dtype: Any) -> None:
            self.array = np.zeros(tuple(shape), dtype)
            self.ptr, self.nbytes = self.array.ctypes.data, self.array.nbytes
            world.allocations += 1
            world.record("PinnedBuffer", tuple(shape), np.dtype(dtype).name)

        def close(self) -> None:
            world.record("PinnedBuffer.close", self.ptr)

    def copy_htod_async(dst: DeviceBuffer, src: PinnedBuffer, stream: Stream,
                        nbytes: int | None = None) -> None:
        blob = src.array.tobytes()[:nbytes]
        world.record("copy_htod_async", dst.ptr, stream.handle, len(blob))
        world.memory[dst.ptr][: len(blob)] = blob

    def copy_dtoh_async(dst: PinnedBuffer, src: DeviceBuffer, stream: Stream,
                        nbytes: int | None = None) -> None:
        flat = dst.array.reshape(-1).view(np.uint8)[:nbytes]
        world.record("copy_dtoh_async", src.ptr, stream.handle, flat.size)
        flat[:] = np.frombuffer(bytes(world.memory[src.ptr][: flat.size]), np.uint8)

    mod.CudaError = CudaError
    mod.check = check
    mod.cuda_available = lambda: available
    mod.device_identity = lambda index=0: identity
    mod.use_device = lambda index=0: world.record("use_device", index)
    mod.Stream, mod.DeviceBuffer, mod.PinnedBuffer = Stream, DeviceBuffer, PinnedBuffer
    mod.copy_htod_async, mod.copy_dtoh_async = copy_htod_async, copy_dtoh_async
    return mod
