"""Content hashes and atomic writes for models, variant files, engine caches and manifests.

Every artefact here is keyed or checked by content, and written through a temporary file
in the same directory plus ``os.replace``, so a crash or a concurrent writer never leaves
a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import onnx


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Full hex sha256 of a file (streamed)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_json(value: Any) -> str:
    """Hex sha256 of a JSON-serialisable value in canonical form (sorted keys)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; on success it replaces ``final`` atomically."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_atomic(final: str | os.PathLike[str], writer: Callable[[Path], object]) -> Path:
    """Run ``writer(tmp_path)`` and move the result to ``final`` atomically."""
    with atomic_path(final) as tmp:
        writer(tmp)
    return Path(final)


def write_json_atomic(final: str | os.PathLike[str], value: Any) -> Path:
    return write_atomic(final, lambda p: p.write_text(json.dumps(value, indent=2) + "\n"))


def save_model_atomic(model: onnx.ModelProto, final: str | os.PathLike[str]) -> Path:
    return write_atomic(final, lambda p: onnx.save(model, str(p)))


def copy_atomic(src: str | os.PathLike[str], final: str | os.PathLike[str]) -> Path:
    return write_atomic(final, lambda p: shutil.copyfile(src, p))
