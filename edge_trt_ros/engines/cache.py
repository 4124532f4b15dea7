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

Loading a TensorRT plan runs code the plan names (its kernels; with version compatibility
also host code: the lean runtime it embeds), so what is loaded must be what this package
built (docs/reliability.md, "Safe engine loading"):

- the cache directory is made private (0o700) and must belong to this user; a directory
  others can write is tightened when it is ours and refused when it is not
  (:class:`~edge_trt_ros.errors.UnsafeCacheError`); the configured path is resolved once,
  and entries are opened without following symlinks, so nothing outside the directory is
  read through a link planted in it;
- every entry has a manifest written at build time (:class:`EntryManifest`: the full key
  - variant hash, backend version, device, settings - the payload's size and SHA-256, and
  whether it carries host code); an entry is deserialized only when its manifest matches
  the key asked for and the bytes; anything else is a miss, moved aside and rebuilt;
- host code is allowed only for an entry whose manifest says this package built it with
  host code (``prepare`` hands the manifest to the backend right before deserializing).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import json
import logging
import os
import platform
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from edge_trt_ros import __version__
from edge_trt_ros.errors import CacheCorrupt, UnsafeCacheError
from edge_trt_ros.files import atomic_path, sha256_file, write_atomic

log = logging.getLogger("edge_trt_ros.engines.cache")

T = TypeVar("T")
MAGIC = b"EDGETRT-CACHE-1\n"
_HEADER = len(MAGIC) + 16 + 64 + 1  # magic, 16 hex digits of length, sha256 hex, newline
MANIFEST_FORMAT = 2
BUILT_BY = f"edge_trt_ros {__version__}"
MAX_MANIFEST_BYTES = 1 << 20  # a manifest is a few hundred bytes; never read a huge one


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


@dataclass(frozen=True)
class EntryManifest:
    """What this package wrote beside a cache entry when it built it."""

    key: dict[str, Any]  # CacheKey.canonical() as JSON
    payload_sha256: str
    payload_bytes: int
    host_code: bool = False  # a TensorRT plan with embedded host code (version compatible)
    built_by: str = BUILT_BY
    format: int = MANIFEST_FORMAT

    @classmethod
    def for_payload(cls, key: CacheKey, payload: bytes, host_code: bool) -> EntryManifest:
        return cls(json.loads(key.canonical()), hashlib.sha256(payload).hexdigest(),
                   len(payload), host_code)

    @classmethod
    def parse(cls, text: str) -> EntryManifest:
        """Strict: plain JSON with exactly the expected fields and types, else CacheCorrupt."""
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise CacheCorrupt(f"manifest is not JSON ({exc})") from None
        types = {"key": dict, "payload_sha256": str, "payload_bytes": int, "host_code": bool,
                 "built_by": str, "format": int}
        if not isinstance(raw, dict) or set(raw) != set(types) or any(
                type(raw[k]) is not t for k, t in types.items()):
            raise CacheCorrupt("manifest lacks fields or has wrong types (written by another "
                               "version, or not by this package)")
        if raw["format"] != MANIFEST_FORMAT:
            raise CacheCorrupt(f"manifest format {raw['format']} (this version writes "
                               f"{MANIFEST_FORMAT})")
        return cls(**raw)

    def mismatch(self, key: CacheKey, payload: bytes) -> str | None:
        """Why this manifest does not vouch for ``payload`` under ``key``, or None."""
        want = json.loads(key.canonical())
        if self.key != want:
            fields = sorted(k for k in set(want) | set(self.key)
                            if want.get(k) != self.key.get(k))
            return f"manifest was written for another {', '.join(fields)}"
        if self.payload_bytes != len(payload) or \
                self.payload_sha256 != hashlib.sha256(payload).hexdigest():
            return "the entry's bytes are not the ones its manifest records"
        return None


def _private_dir(path: Path) -> Path:
    """``path`` resolved, created 0o700, owned by this user and writable by nobody else."""
    root = path.expanduser().resolve()
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.stat(root)
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeCacheError(f"engine cache {root} is not a directory")
    if info.st_uid != os.geteuid():
        raise UnsafeCacheError(
            f"engine cache {root} belongs to uid {info.st_uid}, not to this user (uid "
            f"{os.geteuid()}): a plan there could have been written by someone else and "
            "loading it runs its code; set engine_cache_dir to a directory of your own")
    if stat.S_IMODE(info.st_mode) & 0o077:
        log.warning("engine cache %s had mode %o (others could read or write plans): made it "
                    "private (700)", root, stat.S_IMODE(info.st_mode))
        os.chmod(root, 0o700)
    parent = os.stat(root.parent)
    if parent.st_mode & stat.S_IWOTH and not parent.st_mode & stat.S_ISVTX:
        raise UnsafeCacheError(f"engine cache {root} sits in {root.parent}, which anyone can "
                               "write (no sticky bit), so the cache could be swapped: move it")
    return root


def _read_private(path: Path, limit: int | None = None) -> bytes:
    """A regular file of this user that only this user can write, read without following a
    symlink; FileNotFoundError when absent, UnsafeCacheError when not trustworthy."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise FileNotFoundError(str(path)) from None
        if exc.errno == errno.ELOOP:
            raise UnsafeCacheError(f"{path.name} is a symlink; entries are never read "
                                   "through links") from None
        raise
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeCacheError(f"{path.name} is not a regular file")
        if info.st_uid != os.geteuid() or info.st_mode & 0o022:
            raise UnsafeCacheError(f"{path.name} belongs to uid {info.st_uid} with mode "
                                   f"{stat.S_IMODE(info.st_mode):o}: not written by this "
                                   "package for this user")
        return f.read() if limit is None else f.read(limit + 1)



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


_HEX = frozenset(b"0123456789abcdef")


def _unframe(blob: bytes) -> bytes:
    fields = blob[len(MAGIC) : _HEADER - 1]
    if (len(blob) < _HEADER or not blob.startswith(MAGIC) or blob[_HEADER - 1 : _HEADER] != b"\n"
            or not _HEX.issuperset(fields)):  # int() alone would take spaces and underscores
        raise CacheCorrupt(f"not a cache entry ({len(blob)} bytes, bad header)")
    length = int(fields[:16], 16)
    digest = fields[16:].decode()
    payload = blob[_HEADER:]
    if len(payload) != length:
        raise CacheCorrupt(f"truncated: {len(payload)} of {length} payload bytes")
    if hashlib.sha256(payload).hexdigest() != digest:
        raise CacheCorrupt("payload does not match its SHA-256")
    return payload


class EngineCache:
    """A private directory of framed engine blobs, each with its build-time manifest."""

    def __init__(self, root: str | os.PathLike[str], suffix: str = ".engine") -> None:
        self.root = _private_dir(Path(root))
        self.suffix = suffix

    def path(self, key: CacheKey) -> Path:
        return self.root / f"{key.digest}{self.suffix}"

    def manifest_path(self, key: CacheKey) -> Path:
        path = self.path(key)
        return path.with_suffix(path.suffix + ".json")

    def load(self, key: CacheKey, deserialize: Callable[[bytes], T],
             prepare: Callable[[EntryManifest], None] | None = None) -> T | None:
        """The cached engine, or None on a miss: absent, damaged, unsafe (a link, another
        owner), without a matching manifest, or refused by the backend. ``prepare`` gets the
        verified manifest right before ``deserialize`` (TensorRT: allow host code or not)."""
        path = self.path(key)
        try:
            blob = _read_private(path)
        except FileNotFoundError:
            return None
        except (UnsafeCacheError, OSError) as exc:
            self._quarantine(path, exc)
            return None
        try:
            payload = _unframe(blob)
            manifest = self._manifest(key)
            why = manifest.mismatch(key, payload)
            if why is not None:
                raise CacheCorrupt(why)
        except (CacheCorrupt, UnsafeCacheError, OSError, ValueError) as exc:
            self._quarantine(path, exc)
            return None
        try:
            if prepare is not None:
                prepare(manifest)
            engine = deserialize(payload)
        except Exception as exc:  # any backend failure to deserialize is a miss, never a crash
            self._quarantine(path, exc)
            return None
        if engine is None:  # TensorRT's deserialize_cuda_engine returns None on mismatch
            self._quarantine(path, ValueError("the backend could not deserialize it"))
        return engine

    def _manifest(self, key: CacheKey) -> EntryManifest:
        try:
            raw = _read_private(self.manifest_path(key), MAX_MANIFEST_BYTES)
        except FileNotFoundError:
            raise CacheCorrupt("no manifest: not built by this package (or by a version "
                               "before manifests)") from None
        if len(raw) > MAX_MANIFEST_BYTES:
            raise CacheCorrupt(f"manifest larger than {MAX_MANIFEST_BYTES} bytes")
        return EntryManifest.parse(raw.decode("utf-8", errors="replace"))

    def store(self, key: CacheKey, payload: bytes, host_code: bool = False) -> Path:
        """Write atomically (a temp file in the same directory, fsync, rename), then the
        manifest; an entry is only ever loaded with the manifest that describes it."""
        path = self.path(key)
        manifest = EntryManifest.for_payload(key, payload, host_code)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            f.write(_frame(payload))
            f.flush()
            os.fsync(f.fileno())  # a plan survives a power cut once it has its final name
        try:
            write_atomic(self.manifest_path(key),
                         lambda p: p.write_text(json.dumps(asdict(manifest), sort_keys=True)))
        except OSError:
            with contextlib.suppress(OSError):  # an entry without its manifest is never used
                os.unlink(path)
            raise
        return path

    def get_or_build(
        self,
        key: CacheKey,
        build: Callable[[], bytes],
        deserialize: Callable[[bytes], T],
        *,
        host_code: bool = False,
        prepare: Callable[[EntryManifest], None] | None = None,
    ) -> tuple[T, bool]:
        """(engine, built_now). Builders of one key take turns; later ones load the result.
        ``host_code``: what a fresh build carries (recorded in its manifest)."""
        with self._locked(key):
            cached = self.load(key, deserialize, prepare)
            if cached is not None:
                return cached, False
            log.info("engine cache miss for %s: building (this can take minutes)", key.digest)
            payload = build()
            try:
                self.store(key, payload, host_code)
            except OSError as exc:  # disk full, read-only, quota: the engine itself is fine
                log.warning("engine cache %s: cannot store the engine just built (%s); it "
                            "runs anyway, but is built again at the next start until the "
                            "cache can be written: free disk space or fix engine_cache_dir",
                            self.root, exc.strerror or exc)
        if prepare is not None:
            prepare(EntryManifest.for_payload(key, payload, host_code))
        engine = deserialize(payload)
        if engine is None:
            raise ValueError(f"a freshly built engine for {key.digest} does not deserialize")
        return engine, True

    @contextlib.contextmanager
    def _locked(self, key: CacheKey) -> Iterator[None]:
        lock_path = self.root / f".{key.digest}.lock"
        try:
            fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW
                         | getattr(os, "O_CLOEXEC", 0), 0o600)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            os.unlink(lock_path)  # a link planted as the lock file: never write through it
            log.warning("engine cache lock %s was a symlink; removed it", lock_path)
            fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW
                         | getattr(os, "O_CLOEXEC", 0), 0o600)
        with os.fdopen(fd, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _quarantine(self, path: Path, exc: Exception) -> None:
        """Move the entry and its manifest aside (``*.bad``; links are moved, not followed)."""
        bad = path.with_suffix(path.suffix + ".bad")
        log.warning("engine cache entry %s is unusable (%s); moved to %s, rebuilding",
                    path, exc, bad.name)
        manifest = path.with_suffix(path.suffix + ".json")
        for source, target in ((path, bad), (manifest, manifest.with_suffix(".json.bad"))):
            with contextlib.suppress(FileNotFoundError):
                os.replace(source, target)
