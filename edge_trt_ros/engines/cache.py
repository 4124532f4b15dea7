"""Engine cache: built plans/sessions on disk, keyed by everything that changes the result.

A TensorRT build takes minutes on a Jetson, so a robot must start from a cached plan, and
a stale or damaged plan must never be loaded or crash the node. Hence:

- the key hashes the variant file's bytes, backend + version, device identity, every
  build setting and the calibration hash (:class:`CacheKey`);
- entries are written to a temp file, fsynced and renamed (a reader never sees half a
  file), with a header carrying the payload's length and SHA-256, so a truncated or
  corrupted file is detected before the backend parses it;
- a file that fails the check or fails to deserialize is a miss: logged, moved aside
  (``*.bad``) for inspection, rebuilt;
- builders of the same key serialise on a lock file, so concurrent processes build once.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import logging
import os
import platform
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from edge_trt_ros.errors import CacheCorrupt
from edge_trt_ros.files import atomic_path, sha256_file, write_atomic

log = logging.getLogger("edge_trt_ros.engines.cache")

T = TypeVar("T")
MAGIC = b"EDGETRT-CACHE-1\n"
_HEADER = len(MAGIC) + 16 + 64 + 1  # magic, 16 hex digits of length, sha256 hex, newline


@dataclass(frozen=True)
class CacheKey:
    """Everything an engine's result depends on; ``digest`` names the cache entry."""

    variant_sha256: str
    backend: str
    backend_version: str
    device: str  # e.g. "NVIDIA Orin (sm_87)" or "cpu:AMD EPYC ... avx512_vnni"
    settings: Mapping[str, str] = field(default_factory=dict)
    calibration_sha256: str = ""

    @classmethod
    def for_file(cls, variant: str | os.PathLike[str], **fields: object) -> CacheKey:
        return cls(variant_sha256=sha256_file(variant), **fields)  # type: ignore[arg-type]

    def canonical(self) -> str:
        return json.dumps(
            {
                "variant_sha256": self.variant_sha256,
                "backend": self.backend,
                "backend_version": self.backend_version,
                "device": self.device,
                "settings": {str(k): str(v) for k, v in sorted(self.settings.items())},
                "calibration_sha256": self.calibration_sha256,
            },
            sort_keys=True,
        )

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.canonical().encode()).hexdigest()[:32]



@functools.cache
def cpu_identity() -> str:
    """'cpu:<model> <hash of the ISA flags>': what a CPU-optimised graph depends on (ONNX
    Runtime picks blocked layouts and kernels by instruction set)."""
    model, flags = platform.machine(), ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == platform.machine():
                model = value.strip()
            elif key.strip() in ("flags", "Features") and not flags:
                flags = " ".join(sorted(value.split()))
    except OSError:
        pass
    return f"cpu:{model} isa-{hashlib.sha256(flags.encode()).hexdigest()[:12]}"


def _frame(payload: bytes) -> bytes:
    return MAGIC + f"{len(payload):016x}".encode() + hashlib.sha256(payload).hexdigest().encode() \
        + b"\n" + payload


def _unframe(blob: bytes) -> bytes:
    if len(blob) < _HEADER or not blob.startswith(MAGIC):
        raise CacheCorrupt(f"not a cache entry ({len(blob)} bytes, bad header)")
    length = int(blob[len(MAGIC) : len(MAGIC) + 16], 16)
    digest = blob[len(MAGIC) + 16 : _HEADER - 1].decode()
    payload = blob[_HEADER:]
    if len(payload) != length:
        raise CacheCorrupt(f"truncated: {len(payload)} of {length} payload bytes")
    if hashlib.sha256(payload).hexdigest() != digest:
        raise CacheCorrupt("payload does not match its SHA-256")
    return payload


class EngineCache:
    """A directory of framed engine blobs plus a JSON sidecar describing each key."""

    def __init__(self, root: str | os.PathLike[str], suffix: str = ".engine") -> None:
        self.root = Path(root)
        self.suffix = suffix
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: CacheKey) -> Path:
        return self.root / f"{key.digest}{self.suffix}"

    def load(self, key: CacheKey, deserialize: Callable[[bytes], T]) -> T | None:
        """The cached engine, or None on a miss (absent, damaged, or refused by the backend)."""
        path = self.path(key)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            engine = deserialize(_unframe(blob))
        except Exception as exc:  # any backend failure to deserialize is a miss, never a crash
            self._quarantine(path, exc)
            return None
        if engine is None:  # TensorRT's deserialize_cuda_engine returns None on mismatch
            self._quarantine(path, ValueError("the backend could not deserialize it"))
        return engine

    def store(self, key: CacheKey, payload: bytes) -> Path:
        """Write atomically: a temp file in the same directory, fsync, rename."""
        path = self.path(key)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            f.write(_frame(payload))
            f.flush()
            os.fsync(f.fileno())  # a plan survives a power cut once it has its final name
        write_atomic(path.with_suffix(path.suffix + ".json"),
                     lambda p: p.write_text(key.canonical()))
        return path

    def get_or_build(
        self,
        key: CacheKey,
        build: Callable[[], bytes],
        deserialize: Callable[[bytes], T],
    ) -> tuple[T, bool]:
        """(engine, built_now). Builders of one key take turns; later ones load the result."""
        with self._locked(key):
            cached = self.load(key, deserialize)
            if cached is not None:
                return cached, False
            log.info("engine cache miss for %s: building (this can take minutes)", key.digest)
            payload = build()
            self.store(key, payload)
        engine = deserialize(payload)
        if engine is None:
            raise ValueError(f"a freshly built engine for {key.digest} does not deserialize")
        return engine, True

    @contextlib.contextmanager
    def _locked(self, key: CacheKey) -> Iterator[None]:
        with open(self.root / f".{key.digest}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _quarantine(self, path: Path, exc: Exception) -> None:
        bad = path.with_suffix(path.suffix + ".bad")
        log.warning("engine cache entry %s is unusable (%s); moved to %s, rebuilding",
                    path, exc, bad.name)
        with contextlib.suppress(FileNotFoundError):
            os.replace(path, bad)
