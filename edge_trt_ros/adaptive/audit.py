"""The energy-accuracy audit log: append-only JSON lines, one record per decision or switch.

Why each property:

- **Append-only, one line per record, written with one ``write`` on an ``O_APPEND`` file and
  fsynced before the call returns**: a record the caller was told is written survives a crash
  or a power cut, and concurrent writers cannot interleave inside a line.
- **A crash mid-write leaves a readable log**: the reader skips a torn last line and says so;
  on reopening, the writer ends a torn line with a newline (so the next record starts on its
  own line) and writes a ``recovered`` record saying how many bytes were torn.
- **Rotated by size without loss**: when a record would push the file past ``max_bytes`` the
  file is renamed to the next free ``LOG.N`` (``LOG.1`` is the oldest) and a new one is
  started; a rename never splits or drops a record, and nothing is ever deleted or truncated
  (the log is the audit trail: size the disk for it, ~1 kB per decision record).
- **Never silently dropped**: a failed write (disk full, permissions, read-only filesystem)
  raises :class:`~edge_trt_ros.errors.AuditWriteError`; the record is kept in memory and
  written first when writing works again (beyond ``max_pending`` records the oldest are
  counted and a ``lost`` record says how many).
- Every record carries ``seq`` (continues across rotation and restarts: a gap means records
  were lost), ``session`` (one per open), UTC ``time`` and ``t_mono`` (the controller's
  monotonic clock, which durations are computed from within a session).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import stat
import threading
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edge_trt_ros.errors import AuditWriteError

SCHEMA = "edge_trt_ros.audit/1"
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
MAX_PENDING = 10_000
_TAIL = 64 * 1024


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def clean(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become None (JSON has no NaN), tuples lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, str | int | bool) or value is None:
        return value
    return str(value)


def log_files(path: str | os.PathLike[str]) -> list[Path]:
    """The log's files, oldest first: ``LOG.1``, ``LOG.2``, ..., then ``LOG`` itself."""
    p = Path(path)
    pattern = re.compile(re.escape(p.name) + r"\.(\d+)$")
    rotated = []
    if p.parent.is_dir():
        for f in p.parent.iterdir():
            m = pattern.match(f.name)
            if m:
                rotated.append((int(m.group(1)), f))
    files = [f for _, f in sorted(rotated)]
    if p.exists():
        files.append(p)
    return files


def _last_record(path: Path) -> dict[str, Any] | None:
    """The last complete, parseable record of a regular file (read from its tail)."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return None
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - _TAIL))
            lines = f.read().split(b"\n")
    except OSError:
        return None
    for line in reversed(lines[:-1] if lines and lines[-1] else lines):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "seq" in record:
            return record
    return None


class AuditLog:
    """Appends records to ``path``; thread-safe (the node's timer and services share it)."""

    def __init__(self, path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES,
                 wall: Callable[[], datetime] = utc_now, max_pending: int = MAX_PENDING) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.max_pending = max_pending
        self._wall = wall
        self._lock = threading.Lock()
        self._pending: deque[bytes] = deque()
        self._lost = 0
        self._torn = False  # a failed write may have left part of a line
        self.session = uuid.uuid4().hex[:12]
        self.records_written = 0
        self.rotations = 0
        last = None
        for f in reversed(log_files(self.path)):
            last = _last_record(f)
            if last is not None:
                break
        self._seq = int(last["seq"]) if last else 0
        self._fd = self._open()
        torn = self._torn_tail()
        if torn:
            self._torn = True  # the next write ends the torn line first
            self.append("recovered", None, {
                "torn_bytes": torn, "file": str(self.path),
                "note": "the last line was cut short (a crash mid-write); readers skip it"})

    # -- files ----------------------------------------------------------------------------
    def _open(self) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        except OSError as exc:
            raise AuditWriteError(
                f"audit log {self.path}: cannot open for appending "
                f"({exc.strerror or exc}); no decision can be recorded until it can: fix the "
                "path or its permissions (adaptive.audit_log_path)") from exc
        self._sync_dir()
        return fd

    def _sync_dir(self) -> None:
        """Make a create/rename durable (the directory entry is data too)."""
        with contextlib.suppress(OSError):
            dfd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    def _torn_tail(self) -> int:
        """Bytes after the last newline of the file (0 when it ends cleanly)."""
        try:
            st = os.fstat(self._fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
                return 0
            with open(self.path, "rb") as f:
                f.seek(max(0, st.st_size - _TAIL))
                tail = f.read()
        except OSError:
            return 0
        if tail.endswith(b"\n"):
            return 0
        cut = tail.rfind(b"\n")
        return len(tail) - cut - 1 if cut >= 0 else len(tail)

    def _rotate(self) -> None:
        files = log_files(self.path)
        pattern = re.compile(re.escape(self.path.name) + r"\.(\d+)$")
        numbers = [int(m.group(1)) for f in files if (m := pattern.match(f.name))]
        target = self.path.with_name(f"{self.path.name}.{max(numbers, default=0) + 1}")
        os.fsync(self._fd)
        os.close(self._fd)
        os.rename(self.path, target)  # one atomic rename: every record is in one file or the other
        self.rotations += 1
        self._fd = self._open()

    def _write_raw(self, data: bytes) -> None:
        view = memoryview(data)
        written = 0
        try:
            while written < len(view):
                n = os.write(self._fd, view[written:])
                if n <= 0:
                    raise OSError("write returned 0 bytes")
                written += n
            os.fsync(self._fd)
        except OSError:
            self._torn = self._torn or 0 < written < len(view)
            raise

    # -- records --------------------------------------------------------------------------
    def append(self, kind: str, t_mono: float | None, body: Mapping[str, Any]) -> int:
        """Write one record now (flushed and fsynced); returns its ``seq``.

        Raises :class:`AuditWriteError` when it cannot be written; it is then kept and
        written before the next record."""
        with self._lock:
            self._seq += 1
            record = {"schema": SCHEMA, "seq": self._seq, "session": self.session,
                      "time": self._wall().isoformat(timespec="milliseconds"),
                      "t_mono": t_mono, "kind": kind, **body}
            line = json.dumps(clean(record), separators=(",", ":"), allow_nan=False) + "\n"
            self._pending.append(line.encode())
            while len(self._pending) > self.max_pending:
                self._pending.popleft()
                self._lost += 1
            self._flush_pending()
            return self._seq

    def _flush_pending(self) -> None:
        try:
            if self._lost:
                self._seq += 1
                lost = {"schema": SCHEMA, "seq": self._seq, "session": self.session,
                        "time": self._wall().isoformat(timespec="milliseconds"),
                        "t_mono": None, "kind": "lost", "records": self._lost,
                        "note": "records dropped from memory while the log could not be "
                                "written (more than max_pending)"}
                self._write_line(json.dumps(lost, separators=(",", ":")).encode() + b"\n")
                self._lost = 0
            while self._pending:
                self._write_line(self._pending[0])
                self._pending.popleft()
                self.records_written += 1
        except OSError as exc:
            raise AuditWriteError(
                f"audit log {self.path}: cannot write ({exc.strerror or exc}); "
                f"{len(self._pending)} record(s) held in memory and written when it works "
                "again: free disk space or fix permissions", pending=len(self._pending)) from exc

    def _write_line(self, data: bytes) -> None:
        if self._torn:  # a failed write left part of a line: end it so this one stands alone
            self._write_raw(b"\n")
            self._torn = False
        st = os.fstat(self._fd)
        if stat.S_ISREG(st.st_mode) and st.st_size > 0 and st.st_size + len(data) > self.max_bytes:
            self._rotate()
        self._write_raw(data)

    def flush(self) -> int:
        """Write the records held since a failed write; returns how many were written.

        A controller in a steady state may record nothing for hours, so the node calls this
        while records are held instead of waiting for the next one. Raises
        :class:`AuditWriteError` while the log still cannot be written."""
        with self._lock:
            before = self.records_written
            if self._pending or self._lost:
                self._flush_pending()
            return self.records_written - before

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def seq(self) -> int:
        return self._seq

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                with contextlib.suppress(OSError):
                    os.fsync(self._fd)
                os.close(self._fd)
                self._fd = -1


@dataclass(frozen=True)
class Skipped:
    file: str
    line: int
    reason: str
    text: str  # the start of the line, for a person to look at


@dataclass(frozen=True)
class AuditRead:
    records: tuple[dict[str, Any], ...]
    skipped: tuple[Skipped, ...]
    files: tuple[str, ...]
    seq_gaps: tuple[tuple[int, int], ...]  # (last seq seen, next seq seen) where some are missing


def read_audit(path: str | os.PathLike[str]) -> AuditRead:
    """Every record of the log and its rotated files, oldest first; lines that do not parse
    (a torn last line after a crash) are skipped and listed."""
    files = log_files(path)
    if not files:
        raise FileNotFoundError(f"no audit log at {path} (nor rotated {Path(path).name}.N)")
    records: list[dict[str, Any]] = []
    skipped: list[Skipped] = []
    for f in files:
        data = f.read_bytes()
        lines = data.split(b"\n")
        ends_clean = data.endswith(b"\n") or not data
        if ends_clean and lines and lines[-1] == b"":
            lines.pop()
        for i, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            last = i == len(lines) and not ends_clean
            try:
                record = json.loads(raw)
                if not isinstance(record, dict) or "seq" not in record:
                    raise ValueError("not an audit record")
            except ValueError:
                reason = ("torn last line (a crash mid-write); skipped" if last else
                          "unreadable line (torn by a crash, or not a record); skipped")
                skipped.append(Skipped(str(f), i, reason,
                                       raw[:80].decode("utf-8", "replace")))
                continue
            records.append(record)
    gaps = []
    for a, b in zip(records, records[1:], strict=False):
        if int(b["seq"]) != int(a["seq"]) + 1:
            gaps.append((int(a["seq"]), int(b["seq"])))
    return AuditRead(tuple(records), tuple(skipped), tuple(str(f) for f in files), tuple(gaps))
