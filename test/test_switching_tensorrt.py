"""The TensorRT path's control flow through the engine switcher, on the RECORDING STAND-IN.

Not TensorRT (none can be installed here): test/tensorrt_standin.py mimics the API the
backend uses and records every call. What is checked is our control flow: the variant file
the catalog picks for TensorRT (s8s8), one build per (variant, profile) with the fusion
table's builder settings, plans served from the engine cache on the way back, every
stream and buffer of a replaced engine released after its last frame, and a build that
fails leaving the running engine untouched.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from tensorrt_standin import World, make_cuda, make_tensorrt

from edge_trt_ros.detector import Detector
from edge_trt_ros.engines.fusion import SETTINGS
from edge_trt_ros.engines.spec import EngineSpec
from edge_trt_ros.engines.tensorrt_backend import load_engine
from edge_trt_ros.errors import EngineError
from edge_trt_ros.model_info import read_model_info
from edge_trt_ros.runtime.selection import plan_engine
from edge_trt_ros.runtime.switcher import EngineSwitcher
from edge_trt_ros.variants.build import build_variants
from edge_trt_ros.variants.calibration import CalibrationSpec
from edge_trt_ros.variants.catalog import Catalog, Variant
from edge_trt_ros.vision.decode import DecodeParams


@pytest.fixture(scope="module")
def catalog(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    out = tmp_path_factory.mktemp("trt_variants")
    build_variants(tiny, out, calibration=CalibrationSpec(count=4, augment=None),
                   copy_base=False)
    return Catalog(tiny, out)


class Opener:
    """Opens detectors on the stand-in, the way the node's runtime opens TensorRT engines."""

    def __init__(self, world: World, trt: ModuleType, cuda: ModuleType) -> None:
        self.world, self.trt, self.cuda = world, trt, cuda

    def __call__(self, spec: EngineSpec, decode: DecodeParams) -> Detector:
        engine = load_engine(spec.model_path, spec.trt_config(), spec.cache_dir,
                             trt_module=self.trt, cuda=self.cuda,
                             device_index=spec.device_index)
        return Detector(engine, read_model_info(spec.model_path), decode, gpu_preprocess=False)


def _plan(catalog: Catalog, base: EngineSpec, precision: str,
          profile: str) -> tuple[EngineSpec, Variant]:
    plan = plan_engine(catalog, base, precision, profile, hardware_fusion_default="max",
                       max_accuracy_drop=1.0)
    return plan.spec, plan.variant


def test_tensorrt_switches_build_once_then_load_from_the_cache(
    catalog: Catalog, tmp_path: Path
) -> None:
    world = World()
    trt, cuda = make_tensorrt(world), make_cuda(world)
    base = EngineSpec("tensorrt", str(catalog.model_path), device="cuda:0",
                      cache_dir=str(tmp_path / "plans"))
    switcher = EngineSwitcher(Opener(world, trt, cuda), workers=1,
                              decode=DecodeParams(0.25, 0.45, 100))
    switcher.start(*_plan(catalog, base, "fp32", "max"))
    spec, variant = _plan(catalog, base, "int8", "conservative")
    assert variant.name == "int8-trt"  # the s8s8 file, never ONNX Runtime's u8s8
    switcher.switch(spec, variant, reason="test")
    assert len(world.named("build_serialized_network")) == 2
    levels = [c[2] for c in world.calls if c[:2] == ("config.set", "builder_optimization_level")]
    assert levels == [SETTINGS["max"].trt_builder_optimization_level,
                      SETTINGS["conservative"].trt_builder_optimization_level]
    streams = [c[1] for c in world.named("Stream")]
    closed = [c[1] for c in world.named("Stream.close")]
    assert closed == [streams[0]]  # the fp32 engine's stream, released after the swap
    switcher.switch(*_plan(catalog, base, "fp32", "max"), reason="back")
    assert len(world.named("build_serialized_network")) == 2  # the cached plan, no build
    switcher.active.first.detect(np.zeros((64, 96, 3), np.uint8))
    assert world.named("execute_async_v3")[-1][1] == world.named("Stream")[-1][1]
    switcher.close()
    assert sorted(c[1] for c in world.named("Stream.close")) == sorted(streams + [
        world.named("Stream")[-1][1]])


def test_each_tensorrt_worker_gets_its_own_engine(catalog: Catalog, tmp_path: Path) -> None:
    world = World()
    base = EngineSpec("tensorrt", str(catalog.model_path), device="cuda:0",
                      cache_dir=str(tmp_path / "plans"))
    switcher = EngineSwitcher(Opener(world, make_tensorrt(world), make_cuda(world)), workers=2,
                              decode=DecodeParams(0.25, 0.45, 100))
    switcher.start(*_plan(catalog, base, "fp32", "max"))
    a, b = switcher.active.detectors
    assert a.engine is not b.engine  # one execution context and buffer set each
    assert len(world.named("create_execution_context")) == 2
    with pytest.raises(EngineError, match="one frame at a time"):
        a.share()
    switcher.close()


def test_a_failed_tensorrt_build_keeps_the_running_engine(
    catalog: Catalog, tmp_path: Path
) -> None:
    world = World()
    good = make_tensorrt(world)
    cuda = make_cuda(world)
    opener = Opener(world, good, cuda)
    base = EngineSpec("tensorrt", str(catalog.model_path), device="cuda:0",
                      cache_dir=str(tmp_path / "plans"))
    switcher = EngineSwitcher(opener, workers=1, decode=DecodeParams(0.25, 0.45, 100))
    switcher.start(*_plan(catalog, base, "fp32", "max"))
    before = switcher.active
    opener.trt = make_tensorrt(world, build_fails=True)
    with pytest.raises(EngineError):
        switcher.switch(*_plan(catalog, base, "fp16", "max"), reason="test")
    assert switcher.active is before
    assert world.named("Stream.close") == []  # nothing of the running engine was released
    before.first.detect(np.zeros((64, 96, 3), np.uint8))  # and it still runs
    switcher.close()
