"""TensorRT backend control flow against a recording stand-in (no GPU, no TensorRT).

The stand-in (test/tensorrt_standin.py) only records calls and mimics API shapes: these
tests check what the backend asks TensorRT for - settings per (precision, fusion profile),
feature detection across TensorRT 10/11, errors, caching, buffers and streams - not what
TensorRT would do with it. test_tensorrt_real.py checks the latter where TensorRT exists.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import types
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_models import tiny_detector
from tensorrt_standin import World, make_cuda, make_tensorrt

from edge_trt_ros.choices import FUSION_PROFILES
from edge_trt_ros.engines import tensorrt_build
from edge_trt_ros.engines.cache import EngineCache
from edge_trt_ros.engines.fusion import SETTINGS
from edge_trt_ros.engines.tensorrt_backend import (
    TIMING_CACHE_NAME,
    TensorRTEngine,
    cache_key,
    engine_layers,
    load_engine,
)
from edge_trt_ros.engines.tensorrt_build import (
    TrtBuildConfig,
    build_serialized,
    detect_features,
    engine_layer_types,
    load_tensorrt,
)
from edge_trt_ros.errors import EngineError, TrtBuildError

# The tiny detector's BatchNorm outputs and activation outputs (SiLU Muls, lone Sigmoids).
TINY_BN = {"/model/stem/bn", "/model/b1/bn", "/model/detect/cv/bn"}
TINY_ACT = {"/model/stem/y", "/model/b1/y", "/model/detect/cv/y", "box_s", "cls_s"}


def _silu_conv_model(path: Path, batch: int | str = 1, qdq: bool = False) -> Path:
    """Conv -> SiLU -> Add on a [batch, 3, 8, 8] input; ``qdq``: int8 Q/DQ on the conv's inputs
    and no BatchNorm (folded, as in the project's int8 files)."""
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32)
    nodes, inits = [], []
    x, weight = "images", "w"
    if qdq:
        inits += [numpy_helper.from_array(np.round(w / 0.01).astype(np.int8), "w_q"),
                  numpy_helper.from_array(np.array(0.01, np.float32), "w_s"),
                  numpy_helper.from_array(np.array(0.02, np.float32), "x_s"),
                  numpy_helper.from_array(np.array(0, np.int8), "zp")]
        nodes += [helper.make_node("QuantizeLinear", ["images", "x_s", "zp"], ["xq"], name="q"),
                  helper.make_node("DequantizeLinear", ["xq", "x_s", "zp"], ["xd"], name="dq"),
                  helper.make_node("DequantizeLinear", ["w_q", "w_s", "zp"], ["wd"], name="wdq")]
        x, weight = "xd", "wd"
    else:
        inits.append(numpy_helper.from_array(w, "w"))
    nodes += [
        helper.make_node("Conv", [x, weight], ["c"], name="/conv/Conv", pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["c"], ["s"], name="/act/Sigmoid"),
        helper.make_node("Mul", ["c", "s"], ["y"], name="/act/Mul"),
        helper.make_node("Add", ["y", "bias"], ["out"], name="/head/Add"),
    ]
    inits.append(numpy_helper.from_array(np.array(0.5, np.float32), "bias"))
    graph = helper.make_graph(
        nodes, "silu_conv",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [batch, 4, 8, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("trt_models")
    return {
        "fp32": tiny_detector(root / "tiny.fp32.onnx"),
        "int8": _silu_conv_model(root / "silu.int8.onnx", qdq=True),
        "dynamic": _silu_conv_model(root / "silu.dyn.onnx", batch="N"),
    }


@pytest.fixture
def world() -> World:
    return World()


def _build(world: World, model: Path, profile: str = "max", flavour: str = "10",
           precision: str = "fp32", **overrides: object) -> tensorrt_build.BuildOutcome:
    trt = make_tensorrt(world, flavour)
    config = TrtBuildConfig.for_variant(precision, profile, **overrides)
    return build_serialized(trt, model, config)


@pytest.mark.parametrize("profile", FUSION_PROFILES)
def test_config_follows_the_fusion_table(profile: str) -> None:
    table = SETTINGS[profile]
    config = TrtBuildConfig.for_variant("fp16", profile)
    assert config.builder_optimization_level == table.trt_builder_optimization_level
    assert (config.mark_batchnorm, config.mark_activation) == (
        table.trt_mark_batchnorm_outputs, table.trt_mark_activation_outputs)
    with pytest.raises(ValueError, match="auto"):
        TrtBuildConfig.for_variant("fp16", "auto")
    with pytest.raises(ValueError, match="opt_batch"):
        TrtBuildConfig(max_batch=2, opt_batch=3)


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
@pytest.mark.parametrize("profile", FUSION_PROFILES)
def test_build_settings_per_precision_and_profile(world: World, models: dict[str, Path],
                                                  precision: str, profile: str) -> None:
    model = models["int8" if precision == "int8" else "fp32"]
    outcome = _build(world, model, profile, precision=precision)
    opt = SETTINGS[profile].trt_builder_optimization_level
    assert ("config.set", "builder_optimization_level", opt) in world.calls
    marked = {c[1] for c in world.named("mark_output")}
    if profile in ("max", "balanced"):
        assert marked == set()
    elif precision == "int8":  # BatchNorm already folded into the conv: only the SiLU
        assert marked == {"y"}
    else:
        assert marked == TINY_BN | TINY_ACT
        kinds = {m.tensor: (m.kind, m.layer_type) for m in outcome.report.marked}
        assert kinds["/model/stem/bn"] == ("batchnorm", "SCALE")
        assert kinds["/model/stem/y"] == ("activation", "ELEMENTWISE")
    # TensorRT 10-like: STRONGLY_TYPED is member 1, so the flag word is 1 << 1.
    assert world.named("create_network") == [("create_network", 2)]
    assert world.named("set_flag") == []  # never FP16/INT8: precision lives in the file
    assert ("config.set", "profiling_verbosity", 2) in world.calls  # DETAILED
    assert outcome.plan.startswith(b"STANDIN") and outcome.report.settings["precision"] == (
        precision)


def test_silu_sigmoid_is_not_a_boundary_of_its_own(models: dict[str, Path]) -> None:
    model = onnx.load(str(models["fp32"]))
    found = tensorrt_build.boundary_tensors(model, batchnorm=True, activation=True)
    assert "/model/stem/s" not in found  # inside a SiLU
    assert found["/model/stem/y"] == "activation" and found["box_s"] == "activation"
    assert set(tensorrt_build.boundary_tensors(model, batchnorm=True, activation=False)) == (
        TINY_BN)


@pytest.mark.parametrize(("flavour", "flags", "typed"),
                         [("10", 2, "flag"), ("11", 1, "flag"), ("11-noflag", 0, "always")])
def test_strongly_typed_is_feature_detected(world: World, models: dict[str, Path],
                                            flavour: str, flags: int, typed: str) -> None:
    trt = make_tensorrt(world, flavour)
    features = detect_features(trt)
    assert features.strongly_typed == typed
    assert features.legacy_precision_flags == (flavour == "10")
    assert features.legacy_calibrator == (flavour == "10")
    outcome = build_serialized(trt, models["fp32"],
                               TrtBuildConfig.for_variant("fp16", "none", dla_core=-1))
    assert world.named("create_network") == [("create_network", flags)]
    assert outcome.report.strongly_typed == typed


def test_tensorrt_without_strong_typing_is_refused(world: World, models: dict[str, Path]) -> None:
    with pytest.raises(EngineError, match="TensorRT 10 or newer"):
        _build(world, models["fp32"], flavour="8")
    assert world.named("create_network") == []


def test_parse_failure_names_the_parser_errors(world: World, models: dict[str, Path]) -> None:
    trt = make_tensorrt(world, parse_errors=[("/model/b1/Conv", "Conv", "kernel weights "
                                              "must be constant")])
    with pytest.raises(TrtBuildError, match=r"/model/b1/Conv.*\(Conv\).*must be constant") as e:
        build_serialized(trt, models["fp32"], TrtBuildConfig())
    assert e.value.stage == "parse" and len(e.value.parser_errors) == 1
    assert world.named("build_serialized_network") == []


def test_build_returning_none_is_an_engine_error(world: World, models: dict[str, Path]) -> None:
    trt = make_tensorrt(world, build_fails=True)
    with pytest.raises(TrtBuildError, match="insufficient workspace.*workspace_bytes") as e:
        build_serialized(trt, models["fp32"], TrtBuildConfig(workspace_bytes=1 << 20))
    assert e.value.stage == "build" and e.value.builder_errors
    assert ("set_memory_pool_limit", "WORKSPACE", 1 << 20) in world.calls


def test_dla_settings_and_gpu_fallback(world: World, models: dict[str, Path],
                                       caplog: pytest.LogCaptureFixture) -> None:
    trt = make_tensorrt(world, dla_cores=2)
    build_serialized(trt, models["int8"], TrtBuildConfig.for_variant("int8", "max", dla_core=1))
    assert ("config.set", "default_device_type", trt.DeviceType.DLA) in world.calls
    assert ("config.set", "DLA_core", 1) in world.calls
    assert world.named("set_flag") == [("set_flag", "GPU_FALLBACK")]
    with pytest.raises(TrtBuildError, match="2 DLA core"):
        build_serialized(trt, models["int8"], TrtBuildConfig(precision="int8", dla_core=2))
    with pytest.raises(TrtBuildError, match="fp32 variant needs gpu_fallback"):
        build_serialized(trt, models["fp32"], TrtBuildConfig(dla_core=0, gpu_fallback=False))
    with caplog.at_level(logging.WARNING):
        build_serialized(trt, models["fp32"], TrtBuildConfig(dla_core=0))
    assert "fall back to the GPU" in caplog.text


def test_dla_engine_sets_the_runtime_core_before_deserializing(
        world: World, models: dict[str, Path], tmp_path: Path) -> None:
    trt, cuda = make_tensorrt(world, dla_cores=1), make_cuda(world)
    engine = load_engine(models["int8"], TrtBuildConfig(precision="int8", dla_core=0),
                         tmp_path, trt_module=trt, cuda=cuda)
    names = world.names()
    assert names.index("Runtime.DLA_core") < names.index("deserialize_cuda_engine")
    assert engine.info.device.endswith("DLA0")


def test_progress_is_logged_and_a_build_can_be_cancelled(
        world: World, models: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="edge_trt_ros.engines.tensorrt"):
        _build(world, models["fp32"])
    text = caplog.text
    assert "this takes minutes on a Jetson" in text
    assert "Building engine (2 steps)" in text and "Building engine done in" in text
    assert "Tactic search" not in text  # nested phases only at DEBUG
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(TrtBuildError, match="cancelled"):
        build_serialized(make_tensorrt(world), models["fp32"], TrtBuildConfig(), cancel=cancel)


def test_module_without_progress_monitor_still_builds(world: World,
                                                      models: dict[str, Path]) -> None:
    trt = make_tensorrt(world, "11", progress_monitor=False)
    build_serialized(trt, models["fp32"], TrtBuildConfig())
    assert not [c for c in world.named("config.set") if c[1] == "progress_monitor"]


def test_timing_cache_is_written_atomically_and_reused(
        world: World, models: dict[str, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    cache_file = tmp_path / "t" / "timing.cache"
    writes: list[Path] = []
    real_write = tensorrt_build.write_atomic

    def spy(path: Path, writer: object) -> Path:
        writes.append(Path(path))
        return real_write(path, writer)  # type: ignore[arg-type]

    monkeypatch.setattr(tensorrt_build, "write_atomic", spy)
    first = _build(world, models["fp32"], "max", timing_cache_path=str(cache_file))
    assert first.report.timing_cache == "new" and writes == [cache_file]
    saved = cache_file.read_bytes()
    assert saved.startswith(b"TC") and list(cache_file.parent.iterdir()) == [cache_file]
    second = _build(world, models["fp32"], "balanced", timing_cache_path=str(cache_file))
    assert ("create_timing_cache", saved) in world.calls
    assert second.report.timing_cache == f"read {len(saved)} bytes"
    assert cache_file.read_bytes() != saved  # grew with the second build's tactics

    cache_file.write_bytes(b"from another TensorRT")
    with caplog.at_level(logging.WARNING):
        third = _build(world, models["fp32"], "none", timing_cache_path=str(cache_file))
    assert third.report.timing_cache == "new" and "unusable" not in caplog.text
    assert "another GPU or TensorRT" in caplog.text and cache_file.read_bytes().startswith(b"TC")


def test_cache_key_covers_every_build_setting_but_the_timing_cache_path(
        world: World, models: dict[str, Path]) -> None:
    trt = make_tensorrt(world)
    base = TrtBuildConfig()
    digest = cache_key(models["fp32"], base, trt, "GPU (sm_87)").digest
    overrides: list[dict[str, Any]] = [{"precision": "fp16"}, {"fusion_profile": "balanced"},
                 {"builder_optimization_level": 3}, {"mark_batchnorm": True},
                 {"mark_activation": True}, {"workspace_bytes": 1 << 30}, {"max_batch": 4},
                 {"max_batch": 4, "opt_batch": 2}, {"dla_core": 0}, {"gpu_fallback": False},
                 {"detailed_profiling": False}, {"calibration_sha256": "c" * 64},
                 {"version_compatible": True},
                 {"version_compatible": True, "exclude_lean_runtime": True}]
    covered = {name for o in overrides for name in o} | {"timing_cache_path"}
    assert covered == {f.name for f in dataclasses.fields(base)}  # a new field needs a case
    changed = [dataclasses.replace(base, **o) for o in overrides]
    digests = {cache_key(models["fp32"], c, trt, "GPU (sm_87)").digest for c in changed}
    assert digest not in digests and len(digests) == len(changed)
    moved = dataclasses.replace(base, timing_cache_path="/elsewhere/t.cache")
    assert cache_key(models["fp32"], moved, trt, "GPU (sm_87)").digest == digest
    assert cache_key(models["fp32"], base, trt, "GPU (sm_90)").digest != digest
    assert cache_key(models["fp32"], base, make_tensorrt(world, version="10.3.0"),
                     "GPU (sm_87)").digest != digest


def test_cache_hit_avoids_building(world: World, models: dict[str, Path],
                                   tmp_path: Path) -> None:
    trt, cuda = make_tensorrt(world), make_cuda(world)
    config = TrtBuildConfig.for_variant("fp32", "max")
    first = load_engine(models["fp32"], config, tmp_path, trt_module=trt, cuda=cuda)
    second = load_engine(models["fp32"], config, tmp_path, trt_module=trt, cuda=cuda)
    assert len(world.named("build_serialized_network")) == 1
    assert (first.info.settings["cache"], second.info.settings["cache"]) == ("built", "hit")
    assert first.info.engine_id == second.info.engine_id
    assert (tmp_path / TIMING_CACHE_NAME).is_file()  # defaults into the engine cache dir
    assert first.info.backend == "tensorrt" and first.info.device == "Stand-in GPU (sm_87)"


def test_plan_the_runtime_refuses_is_rebuilt_and_logged(
        world: World, models: dict[str, Path], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    trt, cuda = make_tensorrt(world), make_cuda(world)
    config = TrtBuildConfig()
    key = cache_key(models["fp32"], dataclasses.replace(
        config, timing_cache_path=str(tmp_path / TIMING_CACHE_NAME)), trt, "Stand-in GPU (sm_87)")
    EngineCache(tmp_path).store(key, b"a plan from before the driver upgrade")
    with caplog.at_level(logging.WARNING):
        engine = load_engine(models["fp32"], config, tmp_path, trt_module=trt, cuda=cuda)
    assert engine.info.settings["cache"] == "built"
    assert len(world.named("build_serialized_network")) == 1
    assert "unusable" in caplog.text and "not compatible with this version" in caplog.text
    assert EngineCache(tmp_path).path(key).with_suffix(".engine.bad").exists()
    assert engine.infer(np.zeros((1, 3, 64, 96), np.float32))[0].shape == (1, 8, 384)


def _engine(world: World, model: Path, tmp_path: Path, profile: str = "max",
            **overrides: object) -> tuple[TensorRTEngine, types.ModuleType]:
    trt, cuda = make_tensorrt(world), make_cuda(world)
    config = TrtBuildConfig.for_variant("fp32", profile, **overrides)
    return load_engine(model, config, tmp_path, trt_module=trt, cuda=cuda), trt


def test_infer_runs_on_its_own_stream_without_per_frame_allocation(
        world: World, models: dict[str, Path], tmp_path: Path) -> None:
    engine, _ = _engine(world, models["fp32"], tmp_path, "conservative")
    stream = world.named("Stream")[0][1]
    allocations = world.allocations
    frame = np.full((1, 3, 64, 96), 0.5, np.float32)
    start = len(world.calls)
    for _ in range(3):
        outputs = engine.infer(frame)
    assert world.allocations == allocations
    per_frame = [c[0] for c in world.calls[start:]]
    assert per_frame == ["copy_htod_async", "execute_async_v3", "copy_dtoh_async",
                         "synchronize"] * 3  # marked boundaries stay on the device
    assert {c[1] for c in world.named("execute_async_v3")} == {stream} and stream != 0
    (out,) = outputs
    assert out.shape == (1, 8, 384) and np.all(out == frame.sum())
    assert not out.flags.writeable


def test_dynamic_batch_gets_a_profile_and_runtime_shapes(
        world: World, models: dict[str, Path], tmp_path: Path) -> None:
    engine, _ = _engine(world, models["dynamic"], tmp_path, max_batch=4, opt_batch=2)
    assert world.named("set_shape") == [("set_shape", "images", (1, 3, 8, 8), (2, 3, 8, 8),
                                         (4, 3, 8, 8))]
    assert engine.input_spec[1] == (4, 3, 8, 8)
    one = engine.infer(np.ones((1, 3, 8, 8), np.float32))[0]
    assert one.shape == (1, 4, 8, 8) and np.all(one == 192)
    three = engine.infer(np.ones((3, 3, 8, 8), np.float32))[0]
    assert three.shape == (3, 4, 8, 8) and np.all(three == 576)
    assert ("set_input_shape", "images", (3, 3, 8, 8)) in world.calls
    copies = [(c[0], c[3]) for c in world.calls if c[0].startswith("copy_")][-2:]
    assert copies == [("copy_htod_async", 3 * 3 * 8 * 8 * 4),  # 3 of 4 rows only
                      ("copy_dtoh_async", 3 * 4 * 8 * 8 * 4)]
    with pytest.raises(EngineError, match="raise max_batch"):
        engine.infer(np.ones((5, 3, 8, 8), np.float32))


def test_static_model_gets_no_profile(world: World, models: dict[str, Path]) -> None:
    assert not _build(world, models["fp32"]).report.dynamic_batch
    assert world.named("add_optimization_profile") == []


def test_bad_input_is_an_engine_error(world: World, models: dict[str, Path],
                                      tmp_path: Path) -> None:
    engine, _ = _engine(world, models["fp32"], tmp_path)
    with pytest.raises(EngineError, match=r"expects shape \[N, 3, 64, 96\]"):
        engine.infer(np.zeros((1, 3, 64, 95), np.float32))
    with pytest.raises(EngineError, match="built for batch 1"):
        engine.infer(np.zeros((2, 3, 64, 96), np.float32))
    with pytest.raises(EngineError, match="cannot feed"):
        engine.infer(np.zeros((1, 3, 64, 96), np.complex64))


def test_infer_device_binds_the_given_pointer_then_restores(
        world: World, models: dict[str, Path], tmp_path: Path) -> None:
    engine, _ = _engine(world, models["fp32"], tmp_path)
    own = [c[2] for c in world.named("set_tensor_address") if c[1] == "images"][-1]
    cuda = make_cuda(world)
    preprocessed = cuda.DeviceBuffer(3 * 64 * 96 * 4)
    world.memory[preprocessed.ptr][:] = np.full(3 * 64 * 96, 2.0, np.float32).tobytes()
    out = engine.infer_device(preprocessed.ptr)[0]
    assert np.all(out == 2.0 * 3 * 64 * 96)
    bound = [c[2] for c in world.named("set_tensor_address") if c[1] == "images"][-2:]
    assert bound == [preprocessed.ptr, own]
    # Written straight into the engine's own binding: no rebinding per frame.
    assert engine.input_device_ptr == own
    world.memory[own][:] = np.full(3 * 64 * 96, 1.0, np.float32).tobytes()
    calls = len(world.named("set_tensor_address"))
    out = engine.infer_device(engine.input_device_ptr)[0]
    assert np.all(out == 1.0 * 3 * 64 * 96)
    assert len(world.named("set_tensor_address")) == calls


def test_release_frees_everything_once(world: World, models: dict[str, Path],
                                       tmp_path: Path) -> None:
    engine, _ = _engine(world, models["fp32"], tmp_path, "none")
    device = len(world.named("DeviceBuffer"))
    engine.release()
    engine.release()
    assert len(world.named("DeviceBuffer.close")) == device > 2  # boundaries have buffers too
    assert len(world.named("PinnedBuffer.close")) == 2 and len(world.named("Stream.close")) == 1
    with pytest.raises(EngineError, match="released"):
        engine.infer(np.zeros((1, 3, 64, 96), np.float32))
    with pytest.raises(EngineError, match="released"):
        _ = engine.stream


def test_engine_layers_show_fused_onnx_nodes(world: World, models: dict[str, Path],
                                             tmp_path: Path) -> None:
    fused, _ = _engine(world, models["fp32"], tmp_path, "max")
    unfused, _ = _engine(world, models["fp32"], tmp_path, "none")
    max_layers = fused.layers()
    none_layers = unfused.layers()
    assert len(none_layers) > len(max_layers)
    stem = max_layers[0]
    assert stem["fused"]
    assert stem["onnx_nodes"][:2] == ["/model/stem/Conv", "/model/stem/BatchNormalization"]
    assert ("get_engine_information", "JSON") in world.calls
    names_only, trt = _engine(world, models["fp32"], tmp_path / "n", detailed_profiling=False)
    assert names_only._engine is not None
    layers = engine_layers(names_only._engine, trt)
    with pytest.raises(EngineError, match="pass the TensorRT module"):
        engine_layers(names_only._engine)  # the stand-in's classes live outside its module
    assert layers[0]["onnx_nodes"][:2] == ["/model/stem/Conv", "/model/stem/BatchNormalization"]


def test_layer_times_use_a_profiler_on_a_second_context(
        world: World, models: dict[str, Path], tmp_path: Path) -> None:
    engine, _ = _engine(world, models["fp32"], tmp_path, "none")
    contexts = len(world.named("create_execution_context"))
    times = engine.layer_times_ms(np.zeros((1, 3, 64, 96), np.float32), runs=4)
    assert len(world.named("create_execution_context")) == contexts + 1
    assert times and all(v == pytest.approx(0.5) for v in times.values())
    assert ("IProfiler.__init__", "LayerTimes") in world.calls


def test_no_cuda_device_and_missing_file_are_clear_errors(
        world: World, models: dict[str, Path], tmp_path: Path) -> None:
    trt = make_tensorrt(world)
    with pytest.raises(EngineError, match="no CUDA device"):
        load_engine(models["fp32"], TrtBuildConfig(), tmp_path, trt_module=trt,
                    cuda=make_cuda(world, available=False))
    with pytest.raises(EngineError, match="edge-trt variants"):
        load_engine(tmp_path / "missing.onnx", TrtBuildConfig(), tmp_path, trt_module=trt,
                    cuda=make_cuda(world))


def test_default_stream_is_refused(world: World, models: dict[str, Path],
                                   tmp_path: Path) -> None:
    cuda: Any = make_cuda(world)
    real_stream = cuda.Stream

    class DefaultStream(real_stream):  # type: ignore[misc, valid-type]
        def __init__(self, device: int = 0) -> None:
            super().__init__(device)
            self.handle = 0

    cuda.Stream = DefaultStream
    with pytest.raises(EngineError, match="default stream"):
        load_engine(models["fp32"], TrtBuildConfig(), tmp_path, trt_module=make_tensorrt(world),
                    cuda=cuda)


def test_load_tensorrt_tells_stubs_from_the_library(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    stubs = tmp_path / "trt_stubs_only_pkg"
    stubs.mkdir()
    (stubs / "__init__.pyi").write_text("class Builder: ...\n")  # what tensorrt-stubs installs
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(EngineError, match="type stubs"):
        load_tensorrt("trt_stubs_only_pkg")
    with pytest.raises(EngineError, match="not installed"):
        load_tensorrt("no_such_tensorrt_module")


def test_engine_lives_on_the_requested_gpu(world: World, models: dict[str, Path],
                                           tmp_path: Path) -> None:
    trt, cuda = make_tensorrt(world), make_cuda(world)
    config = TrtBuildConfig.for_variant("fp32", "max")
    load_engine(models["fp32"], config, tmp_path, trt_module=trt, cuda=cuda, device_index=1)
    names = world.names()
    assert ("use_device", 1) in world.calls
    assert names.index("use_device") < names.index("deserialize_cuda_engine")
    assert [c[2] for c in world.named("Stream")] == [1]
    buffers = world.named("DeviceBuffer")
    assert buffers and all(c[2] == 1 for c in buffers)


def test_logger_keeps_a_bounded_tail(world: World) -> None:
    trt = make_tensorrt(world)
    logger = tensorrt_build.make_logger(trt)
    for i in range(3 * tensorrt_build.LOGGER_KEEPS):
        logger.log(trt.ILogger.Severity.ERROR, f"error {i}")
    assert len(logger.errors) == tensorrt_build.LOGGER_KEEPS
    assert logger.errors[-1] == f"error {3 * tensorrt_build.LOGGER_KEEPS - 1}"


def test_engine_layers_are_read_from_either_builders_listing() -> None:
    trt_listing = ("Engine Layer Information:\n"
                   "Layer(CaskConvolution): /conv0 + /relu0, Tactic: 0x1, images -> a\n"
                   "Layer(Reformat): /reformat, Tactic: 0x0, a -> b\n"
                   "Layer(CaskConvolution): /conv1, Tactic: 0x2, b -> c")
    rtx_listing = ("Layers:\n"
                   "Name: k0, LayerType: correlation, Inputs: [], Outputs: [], TacticName: , x\n"
                   "Name: k1, LayerType: kgen, Inputs: [], Outputs: [], TacticName: , x\n"
                   "Name: k2, LayerType: kgen, Inputs: [], Outputs: [], TacticName: , x")
    assert engine_layer_types(trt_listing) == {"CaskConvolution": 2, "Reformat": 1}
    assert engine_layer_types(rtx_listing) == {"correlation": 1, "kgen": 2}
    assert engine_layer_types("After reformat layers: 1 layers") is None
    assert engine_layer_types("Layers:\nnothing that names a layer") is None
