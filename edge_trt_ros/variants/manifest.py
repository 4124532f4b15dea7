"""The variant manifest: one JSON next to the variant files saying what each file is.

It records, per variant, the file, its sha256, precision, recipe, the base model's hash and
the calibration key, when it was made, and (after ``evaluate``) its accuracy on this
machine: mAP@0.5 overall and per lux bin with the drop against fp32. The variant catalog
(:mod:`edge_trt_ros.variants.catalog`) reads it, so the node knows which file serves a
precision and whether it passes the accuracy guard.
"""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edge_trt_ros.errors import ManifestError
from edge_trt_ros.files import sha256_file, write_json_atomic

SCHEMA = "edge_trt_ros.variants/1"
MANIFEST_NAME = "variants.json"
# The accuracy guard: mAP@0.5 may drop at most half a point, overall and per lux bin.
MAX_MAP50_DROP = 0.005



def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def tool_versions() -> dict[str, str]:
    """Versions of the libraries that produce and run the variants."""
    import onnx
    import onnxruntime

    from edge_trt_ros import __version__

    versions = {"edge_trt_ros": __version__, "onnx": onnx.__version__,
                "onnxruntime": onnxruntime.__version__}
    try:
        import onnxconverter_common

        versions["onnxconverter_common"] = onnxconverter_common.__version__
    except ImportError:  # pragma: no cover - only when fp16 was not built
        pass
    return versions


def machine() -> dict[str, Any]:
    """Which CPU a measurement was taken on (model name, logical cores)."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "logical_cores": os.cpu_count(), "system": platform.system(),
            "python": platform.python_version()}


def variant_entry(
    directory: Path, name: str, file: Path, *, precision: str, recipe: str,
    base_sha256: str, calibration_key: str | None, backends: list[str],
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One manifest row; ``file`` is stored relative to the manifest's directory."""
    return {
        "name": name,
        "file": os.path.relpath(file, directory),
        "sha256": sha256_file(file),
        "bytes": file.stat().st_size,
        "precision": precision,
        "recipe": recipe,
        "base_sha256": base_sha256,
        "calibration_key": calibration_key,
        "backends": backends,
        "created": now_iso(),
        **(details or {}),
        "evaluation": None,
    }


def write_manifest(path: str | os.PathLike[str], manifest: dict[str, Any]) -> Path:
    return write_json_atomic(path, manifest)


def load_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a manifest (a file, or a directory holding ``variants.json``)."""
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST_NAME
    try:
        manifest: dict[str, Any] = json.loads(p.read_text())
    except FileNotFoundError:
        raise ManifestError(f"no variant manifest at {p}; run `edge-trt variants MODEL`") from None
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{p} is not valid JSON ({exc}); rebuild the variants") from exc
    if manifest.get("schema") != SCHEMA:
        raise ManifestError(f"{p} has schema {manifest.get('schema')!r}, expected {SCHEMA!r}")
    manifest["_path"] = str(p)
    return manifest


def variant_path(manifest: dict[str, Any], name: str) -> Path:
    """Absolute path of variant ``name``."""
    try:
        entry = manifest["variants"][name]
    except KeyError:
        raise ManifestError(
            f"variant {name!r} not in manifest (have: {', '.join(manifest['variants'])})"
        ) from None
    return Path(manifest["_path"]).parent / entry["file"]


def verify(manifest: dict[str, Any]) -> list[str]:
    """Problems found comparing the manifest with its files (empty when all match)."""
    problems = []
    for name, entry in manifest["variants"].items():
        path = variant_path(manifest, name)
        if not path.is_file():
            problems.append(f"{name}: {path} missing")
        elif sha256_file(path) != entry["sha256"]:
            problems.append(f"{name}: {path} sha256 differs from the manifest")
    return problems


def save(manifest: dict[str, Any]) -> Path:
    """Write a manifest loaded with :func:`load_manifest` back to its file."""
    body = {k: v for k, v in manifest.items() if not k.startswith("_")}
    return write_manifest(manifest["_path"], body)
