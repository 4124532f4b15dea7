"""Engine cache: keys, atomic writes, damaged entries rebuilt, concurrent builders build once."""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import time
from pathlib import Path

import pytest

from edge_trt_ros.engines.cache import MAGIC, CacheKey, EngineCache


def _key(**changes: object) -> CacheKey:
    base = CacheKey(
        variant_sha256="a" * 64, backend="tensorrt", backend_version="10.3.0",
        device="Orin (sm_87)", settings={"opt_level": "3", "dla": "-1"},
        calibration_sha256="c" * 64,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_key_is_stable_and_changes_with_every_input(tmp_path: Path) -> None:
    assert _key().digest == _key().digest
    assert _key(settings={"dla": "-1", "opt_level": "3"}).digest == _key().digest  # order-free
    variants = [
        _key(variant_sha256="b" * 64), _key(backend="onnxruntime"),
        _key(backend_version="10.3.1"), _key(device="Orin (sm_72)"),
        _key(settings={"opt_level": "5", "dla": "-1"}),
        _key(settings={"opt_level": "3", "dla": "0"}),
        _key(settings={"opt_level": "3", "dla": "-1", "timing_cache": "x"}),
        _key(calibration_sha256="d" * 64),
    ]
    digests = {k.digest for k in variants} | {_key().digest}
    assert len(digests) == len(variants) + 1


def test_key_from_file_hashes_its_bytes(tmp_path: Path) -> None:
    f = tmp_path / "m.onnx"
    f.write_bytes(b"one")
    k1 = CacheKey.for_file(f, backend="onnxruntime", backend_version="1", device="cpu")
    assert CacheKey.for_file(f, backend="onnxruntime", backend_version="1",
                             device="cpu").digest == k1.digest
    f.write_bytes(b"two")
    assert CacheKey.for_file(f, backend="onnxruntime", backend_version="1",
                             device="cpu").digest != k1.digest


def test_store_then_load_round_trips_and_leaves_no_temp_files(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    path = cache.store(_key(), b"plan-bytes")
    assert path.read_bytes().startswith(MAGIC)
    assert cache.load(_key(), bytes) == b"plan-bytes"
    assert cache.load(_key(backend_version="9"), bytes) is None  # other key: miss
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [path.name, path.name + ".json"])


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty"])
def test_damaged_entry_is_a_miss_that_gets_rebuilt(tmp_path: Path, damage: str,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    cache = EngineCache(tmp_path)
    path = cache.store(_key(), b"x" * 1000)
    blob = path.read_bytes()
    path.write_bytes({"truncate": blob[:-10], "flip": blob[:-1] + b"y", "garbage": b"\x00" * 50,
                      "empty": b""}[damage])
    assert cache.load(_key(), bytes) is None
    assert "unusable" in caplog.text and path.with_suffix(".engine.bad").exists()
    engine, built = cache.get_or_build(_key(), lambda: b"rebuilt", bytes)
    assert (engine, built) == (b"rebuilt", True)
    assert cache.get_or_build(_key(), lambda: b"never", bytes) == (b"rebuilt", False)


def test_backend_refusing_a_plan_is_a_miss_not_a_crash(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    cache.store(_key(), b"plan for another TensorRT")

    def deserialize(blob: bytes) -> object:  # like deserialize_cuda_engine on a mismatch
        return None if blob.startswith(b"plan for another") else blob

    def raising(blob: bytes) -> object:
        raise RuntimeError("Serialization assertion failed")

    assert cache.load(_key(), deserialize) is None
    cache.store(_key(), b"plan for another TensorRT")
    assert cache.load(_key(), raising) is None
    engine, built = cache.get_or_build(_key(), lambda: b"fresh plan", deserialize)
    assert (engine, built) == (b"fresh plan", True)


def _build_in_process(root: str, log: str) -> bytes:
    def build() -> bytes:
        with open(log, "a") as f:
            f.write("built\n")
        time.sleep(0.5)
        return b"engine"

    engine, _ = EngineCache(root).get_or_build(_key(), build, bytes)
    return engine


def test_concurrent_builders_build_once(tmp_path: Path) -> None:
    log = tmp_path / "builds.log"
    ctx = mp.get_context("fork")
    with ctx.Pool(4) as pool:
        results = pool.starmap(_build_in_process, [(str(tmp_path / "c"), str(log))] * 4)
    assert results == [b"engine"] * 4
    assert log.read_text().count("built") == 1


@pytest.mark.parametrize("damage", ["newline", "space in length", "underscore in length",
                                    "uppercase digest"])
def test_an_entry_with_a_malformed_header_is_a_miss(tmp_path: Path, damage: str) -> None:
    """The header's fields are exactly hex digits and a newline (int() alone takes spaces
    and underscores; a vertical tab in the newline's place once loaded)."""
    cache = EngineCache(tmp_path)
    key = CacheKey("model-hash", "onnxruntime", "1.0", "cpu", {"level": "all"})
    path = cache.store(key, b"payload")
    entry = path.read_bytes()
    head = len(MAGIC)
    at = {"newline": head + 16 + 64, "space in length": head, "underscore in length": head + 1,
          "uppercase digest": head + 16}[damage]
    byte = {"newline": b"\x0b", "space in length": b" ", "underscore in length": b"_",
            "uppercase digest": entry[at:at + 1].upper()}[damage]
    if byte == entry[at:at + 1]:  # the digest's first character is a decimal digit
        at = head + 16 + next(i for i, c in enumerate(entry[head + 16:]) if chr(c) in "abcdef")
        byte = entry[at:at + 1].upper()
    path.write_bytes(entry[:at] + byte + entry[at + 1:])
    assert cache.load(key, lambda blob: blob) is None
