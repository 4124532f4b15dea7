"""Safe engine loading: a private cache, plans deserialized only with a matching build-time
manifest, host code only for plans this package built with it, and no symlink followed out
of the cache. TensorRT itself is not installable here: the TensorRT side runs against the
recording stand-in (test/tensorrt_standin.py), extended below with the two members this needs
(BuilderFlag.VERSION_COMPATIBLE and Runtime.engine_host_code_allowed), so what is checked is
what the backend asks TensorRT for and when, not TensorRT's own behaviour.
"""

from __future__ import annotations

import enum
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from onnx_models import tiny_detector
from tensorrt_standin import PLAN_MAGIC, World, make_cuda, make_tensorrt
from test_engine_cache import _key  # the cache tests' key

from edge_trt_ros.engines.cache import EngineCache, EntryManifest
from edge_trt_ros.engines.tensorrt_backend import cache_key, load_engine
from edge_trt_ros.engines.tensorrt_build import TrtBuildConfig
from edge_trt_ros.errors import UnsafeCacheError

DEVICE = "Stand-in GPU (sm_87)"


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _tensorrt_with_host_code(world: World) -> Any:
    """The stand-in plus version-compatible builds: such a plan is marked as carrying host
    code, and its Runtime refuses it (returns None, as TensorRT does) unless
    engine_host_code_allowed was set; every setting is recorded."""
    trt = make_tensorrt(world)
    members = [*trt.BuilderFlag.__members__, "VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME"]
    trt.BuilderFlag = enum.IntEnum("BuilderFlag", members)
    base_builder, base_runtime = trt.Builder, trt.Runtime

    class Builder(base_builder):  # type: ignore[misc, valid-type]
        def __init__(self, logger: Any) -> None:
            super().__init__(logger)
            self.since = len(world.calls)  # one Builder per build: its set_flag calls follow

        def build_serialized_network(self, network: Any, config: Any) -> bytes | None:
            plan = super().build_serialized_network(network, config)
            flags = {c[1] for c in world.calls[self.since:] if c[0] == "set_flag"}
            if plan is not None and "VERSION_COMPATIBLE" in flags \
                    and "EXCLUDE_LEAN_RUNTIME" not in flags:
                desc = json.loads(plan[len(PLAN_MAGIC):])
                plan = PLAN_MAGIC + json.dumps({**desc, "host_code": True}).encode()
            return plan

    class Runtime(base_runtime):  # type: ignore[misc, valid-type]
        engine_host_code_allowed = False

        def __setattr__(self, name: str, value: Any) -> None:
            if name == "engine_host_code_allowed":
                world.record("Runtime.engine_host_code_allowed", value)
            super().__setattr__(name, value)

        def deserialize_cuda_engine(self, blob: bytes) -> Any:
            desc = json.loads(bytes(blob)[len(PLAN_MAGIC):]) if bytes(blob).startswith(
                PLAN_MAGIC) else {}
            if desc.get("host_code") and not self.engine_host_code_allowed:
                world.record("refused host code")
                return None
            return super().deserialize_cuda_engine(blob)

    trt.Builder, trt.Runtime = Builder, Runtime
    return trt


@pytest.fixture()
def model(tmp_path: Path) -> Path:
    return tiny_detector(tmp_path / "tiny.onnx")


def test_cache_directory_is_created_private_and_loose_ones_are_tightened(
        tmp_path: Path) -> None:
    root = tmp_path / "deep" / "cache"
    EngineCache(root)
    assert _mode(root) == 0o700
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o777)
    os.chmod(loose, 0o777)
    EngineCache(loose)
    assert _mode(loose) == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a directory of another user")
def test_a_cache_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 12345, 12345)
    with pytest.raises(UnsafeCacheError, match="belongs to uid 12345"):
        EngineCache(theirs)


def test_cache_under_a_world_writable_directory_without_sticky_bit_is_refused(
        tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    with pytest.raises(UnsafeCacheError, match="anyone can write"):
        EngineCache(shared / "cache")


def test_configured_path_is_resolved_once(tmp_path: Path) -> None:
    real = tmp_path / "real"
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    assert EngineCache(link).root == real.resolve()


def test_entry_without_its_manifest_is_never_deserialized(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path / "c")
    path = cache.store(_key(), b"plan")
    cache.manifest_path(_key()).unlink()  # a plan dropped into the cache by someone else
    seen: list[bytes] = []
    assert cache.load(_key(), lambda b: seen.append(b) or b) is None
    assert seen == [] and not path.exists() and path.with_suffix(".engine.bad").exists()


@pytest.mark.parametrize("field", ["backend_version", "device", "variant_sha256"])
def test_manifest_for_another_version_device_or_file_is_a_miss(tmp_path: Path,
                                                               field: str) -> None:
    cache = EngineCache(tmp_path / "c")
    cache.store(_key(), b"plan")
    manifest = json.loads(cache.manifest_path(_key()).read_text())
    manifest["key"][field] = "something else"
    cache.manifest_path(_key()).write_text(json.dumps(manifest))
    seen: list[bytes] = []
    assert cache.load(_key(), lambda b: seen.append(b) or b) is None and seen == []


def test_manifest_must_vouch_for_the_bytes(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path / "c")
    cache.store(_key(), b"plan A")
    manifest = cache.manifest_path(_key()).read_text()
    cache.store(_key(), b"plan B")  # entry replaced, the old manifest put back
    cache.manifest_path(_key()).write_text(manifest)
    assert cache.load(_key(), bytes) is None


def test_symlinked_entry_is_not_followed_out_of_the_cache(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path / "c")
    real = cache.store(_key(), b"plan")
    outside = tmp_path / "outside.engine"
    outside.write_bytes(real.read_bytes())
    real.unlink()
    real.symlink_to(outside)
    seen: list[bytes] = []
    assert cache.load(_key(), lambda b: seen.append(b) or b) is None and seen == []
    assert outside.read_bytes().startswith(b"EDGETRT-CACHE-1")  # untouched
    engine, built = cache.get_or_build(_key(), lambda: b"fresh", bytes)
    assert (engine, built) == (b"fresh", True) and not cache.path(_key()).is_symlink()


def test_entry_others_can_write_is_not_loaded(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path / "c")
    path = cache.store(_key(), b"plan")
    os.chmod(path, 0o666)
    assert cache.load(_key(), bytes) is None


def test_lock_file_planted_as_a_symlink_is_not_written_through(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path / "c")
    target = tmp_path / "victim"
    (cache.root / f".{_key().digest}.lock").symlink_to(target)
    assert cache.get_or_build(_key(), lambda: b"p", bytes) == (b"p", True)
    assert not target.exists()


def test_manifest_parsing_is_strict(tmp_path: Path) -> None:
    good = EntryManifest.for_payload(_key(), b"x", host_code=False)
    raw = json.loads(json.dumps(good.__dict__))
    for bad in ({**raw, "host_code": "yes"}, {**raw, "extra": 1}, {"key": raw["key"]},
                {**raw, "format": 1}, [raw]):
        with pytest.raises(ValueError):
            EntryManifest.parse(json.dumps(bad))


def test_host_code_only_for_a_plan_this_package_built_with_it(tmp_path: Path,
                                                              model: Path) -> None:
    world = World()
    trt, cuda = _tensorrt_with_host_code(world), make_cuda(world)
    config = TrtBuildConfig(version_compatible=True)
    first = load_engine(model, config, tmp_path, trt_module=trt, cuda=cuda, device=DEVICE)
    assert first.info.settings["cache"] == "built"
    assert ("set_flag", "VERSION_COMPATIBLE") in world.calls
    assert world.named("Runtime.engine_host_code_allowed")[-1] == (
        "Runtime.engine_host_code_allowed", True)
    second = load_engine(model, config, tmp_path, trt_module=trt, cuda=cuda, device=DEVICE)
    assert second.info.settings["cache"] == "hit"
    assert world.named("Runtime.engine_host_code_allowed")[-1][1] is True

    # The same plan bytes with a manifest that does not say "host code" (as a plan from
    # elsewhere would): loaded with host code disallowed, so TensorRT refuses it, and the
    # entry is rebuilt rather than run.
    cache = EngineCache(tmp_path)
    key = cache_key(model, config, trt, DEVICE)
    manifest = json.loads(cache.manifest_path(key).read_text())
    cache.manifest_path(key).write_text(json.dumps({**manifest, "host_code": False}))
    world.calls.clear()
    third = load_engine(model, config, tmp_path, trt_module=trt, cuda=cuda, device=DEVICE)
    assert ("refused host code",) in world.calls and third.info.settings["cache"] == "built"
    for engine in (first, second, third):
        engine.release()


def test_plans_without_host_code_never_allow_it(tmp_path: Path, model: Path) -> None:
    world = World()
    trt, cuda = _tensorrt_with_host_code(world), make_cuda(world)
    for config in (TrtBuildConfig(), TrtBuildConfig(version_compatible=True,
                                                    exclude_lean_runtime=True)):
        for _ in range(2):  # built, then from the cache
            load_engine(model, config, tmp_path, trt_module=trt, cuda=cuda,
                        device=DEVICE).release()
    allowed = [c[1] for c in world.named("Runtime.engine_host_code_allowed")]
    assert allowed == [False] * 4
