"""Which variant file serves a precision on a backend, and what it is known to cost in accuracy.

The node and the benchmarks ask the catalog, never a hard-coded table: it reads the variant
manifest (``variants.json``), checks every file against its recorded hash and the manifest
against the model it was made from, and answers ``pick(precision, backend, device)``:

- fp32 is the base model, fp16 the fp16 file;
- int8 is the recipe made for that runtime: u8s8 (``onnxruntime-cpu``) on ONNX Runtime's
  CPU provider, symmetric s8s8 (``tensorrt``) on TensorRT and on a GPU; among several files
  of that recipe, the one that passes the accuracy guard comes first.

Where the variants live: for the shipped model, ``models/variants/`` beside it; for any other
model, ``variants/<first 16 hex of the model's sha256>/`` beside the engine cache directory
(``~/.cache/edge_trt_ros/variants/...`` by default) unless ``variants_dir`` says otherwise.
A missing fp16 file is made on demand (seconds); a missing int8 file is refused with the
command that makes it (it needs calibration images).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_trt_ros.choices import PRECISIONS
from edge_trt_ros.errors import ManifestError
from edge_trt_ros.files import sha256_file
from edge_trt_ros.variants.manifest import (
    MANIFEST_NAME,
    MAX_MAP50_DROP,
    load_manifest,
    save,
    variant_path,
    verify,
)

log = logging.getLogger("edge_trt_ros.variants.catalog")

# (backend, device kind) -> the int8 recipe target that runtime runs well
INT8_TARGET = {("onnxruntime", "cpu"): "onnxruntime-cpu", ("onnxruntime", "cuda"): "tensorrt",
               ("tensorrt", "cuda"): "tensorrt"}


@dataclass(frozen=True)
class Variant:
    """One variant file with what the manifest knows about it."""

    name: str
    precision: str
    path: Path
    sha256: str
    recipe: str
    target: str  # int8 recipe target ("tensorrt" | "onnxruntime-cpu"); "" otherwise
    backends: tuple[str, ...]
    calibration_key: str
    evaluation: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def map50(self) -> float | None:
        return None if self.evaluation is None else self.evaluation.get("map50")

    def drop(self, lux_bin: str | None = None) -> float | None:
        """mAP@0.5 points lost against fp32 (0.01 = one point): in ``lux_bin``, or the worst
        over the overall figure and every bin when None. None until evaluated."""
        drops = (self.evaluation or {}).get("map50_drop_vs_fp32")
        if self.precision == "fp32" and self.evaluation is not None:
            return 0.0
        if not drops:
            return None
        if lux_bin is None:
            return float(max(drops.values()))
        value = drops.get(lux_bin)
        return None if value is None else float(value)

    def within_guard(self, max_drop: float = MAX_MAP50_DROP,
                     lux_bin: str | None = None) -> bool | None:
        """True/False against ``max_drop``; None when the manifest has no evaluation."""
        d = self.drop(lux_bin)
        return None if d is None else d <= max_drop + 1e-9

    def describe(self) -> dict[str, Any]:
        ev = self.evaluation or {}
        return {"name": self.name, "precision": self.precision, "file": str(self.path),
                "recipe": self.recipe, "map50": ev.get("map50"),
                "per_lux_bin_map50": ev.get("per_lux_bin_map50", {}),
                "map50_drop_vs_fp32": ev.get("map50_drop_vs_fp32", {}),
                "within_guard": ev.get("within_guard")}


def default_variants_dir(model_path: str | os.PathLike[str], cache_dir: str | os.PathLike[str],
                         shipped_model: str | os.PathLike[str] | None = None) -> Path:
    """``models/variants`` for the shipped model, else ``variants/<model hash>`` beside the
    engine cache directory."""
    model = Path(model_path)
    if shipped_model is not None and model.resolve() == Path(shipped_model).resolve():
        return model.parent / "variants"
    return Path(cache_dir).parent / "variants" / sha256_file(model)[:16]


class Catalog:
    """The variants of one base model, read from its manifest and checked against files."""

    def __init__(self, model_path: str | os.PathLike[str], directory: str | os.PathLike[str]):
        self.model_path = Path(model_path)
        self.directory = Path(directory)
        self.model_sha256 = sha256_file(self.model_path)
        self.variants: dict[str, Variant] = {}
        self.problems: list[str] = []  # variants left out, with why (for logs and diagnostics)
        self.reload()

    @property
    def manifest_path(self) -> Path:
        return self.directory / MANIFEST_NAME

    def reload(self) -> None:
        """Read the manifest again; the base model itself is always the fp32 variant."""
        self.variants, self.problems = {}, []
        manifest: dict[str, Any] | None = None
        if self.manifest_path.is_file():
            try:
                manifest = load_manifest(self.manifest_path)
            except ManifestError as exc:
                self.problems.append(str(exc))
        if manifest is not None:
            base = manifest.get("base_model", {}).get("sha256")
            if base != self.model_sha256:
                self.problems.append(
                    f"{self.manifest_path} was made from another model (sha256 {str(base)[:12]}"
                    f", this one {self.model_sha256[:12]}); rebuild: {self.build_command()}")
                manifest = None
        bad = set()
        if manifest is not None:
            for problem in verify(manifest):
                bad.add(problem.split(":", 1)[0])
                self.problems.append(f"{problem}; rebuild: {self.build_command()}")
            for name, entry in manifest["variants"].items():
                if name in bad or entry.get("precision") not in PRECISIONS:
                    continue
                self.variants[name] = Variant(
                    name=name, precision=entry["precision"], path=variant_path(manifest, name),
                    sha256=entry["sha256"], recipe=entry.get("recipe", ""),
                    target=(entry.get("int8_recipe") or {}).get("target", ""),
                    backends=tuple(entry.get("backends", ())),
                    calibration_key=entry.get("calibration_key") or "",
                    evaluation=entry.get("evaluation"))
        if "fp32" not in self.variants:  # no manifest (or one without fp32): the model itself
            self.variants["fp32"] = Variant("fp32", "fp32", self.model_path, self.model_sha256,
                                            "base model", "", ("onnxruntime", "tensorrt"), "")
        for problem in self.problems:
            log.warning("variants: %s", problem)

    def build_command(self) -> str:
        return (f"edge-trt variants {self.model_path} --out {self.directory} "
                "--keep-float /model/stem --evaluate")

    def available(self, backend: str, device_kind: str) -> dict[str, Variant]:
        """precision -> the variant that :meth:`pick` returns, for each precision it can."""
        out = {}
        for precision in PRECISIONS:
            with contextlib.suppress(ManifestError):
                out[precision] = self.pick(precision, backend, device_kind)
        return out

    def pick(self, precision: str, backend: str, device_kind: str = "cpu",
             max_drop: float = MAX_MAP50_DROP) -> Variant:
        """The file that serves ``precision`` on ``backend``/``device_kind``; ManifestError
        (with the command to run) when there is none."""
        if precision not in PRECISIONS:
            raise ManifestError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
        candidates = [v for v in self.variants.values()
                      if v.precision == precision and (not v.backends or backend in v.backends)]
        if precision == "int8":
            target = INT8_TARGET.get((backend, device_kind), "tensorrt")
            candidates = [v for v in candidates if v.target == target]
        if not candidates:
            if precision == "int8":
                raise ManifestError(
                    f"no int8 variant of {self.model_path.name} for {backend} on {device_kind} "
                    f"in {self.directory}: int8 needs calibration images; make it with "
                    f"`{self.build_command()}` (or set variants_dir)")
            raise ManifestError(f"no {precision} variant of {self.model_path.name} in "
                                f"{self.directory}; make it with `{self.build_command()}`")

        def rank(v: Variant) -> tuple[int, str]:
            guard = v.within_guard(max_drop)
            return (0 if guard else 1 if guard is None else 2, v.name)

        return min(candidates, key=rank)

    def ensure_fp16(self) -> Variant:
        """The fp16 variant, converting the base model now if the catalog has none (seconds;
        off the hot path). The new file is added to the manifest, which is created if absent."""
        existing = [v for v in self.variants.values() if v.precision == "fp16"]
        if existing:
            return existing[0]
        from edge_trt_ros.variants.build import build_variants

        self.directory.mkdir(parents=True, exist_ok=True)
        log.info("no fp16 variant of %s: converting it now into %s", self.model_path.name,
                 self.directory)
        with tempfile.TemporaryDirectory(prefix=".fp16.", dir=self.directory) as tmp:
            built = load_manifest(build_variants(self.model_path, tmp, include=("fp16",)))
            entry = built["variants"]["fp16"]
            dst = self.directory / Path(entry["file"]).name
            shutil.move(str(Path(tmp) / entry["file"]), dst)
            entry["file"] = dst.name
            if self.manifest_path.is_file():
                manifest = load_manifest(self.manifest_path)
                manifest["variants"]["fp16"] = entry
            else:
                manifest = {k: v for k, v in built.items() if not k.startswith("_")}
                manifest["_path"] = str(self.manifest_path)
                manifest["base_model"]["path"] = os.path.relpath(self.model_path,
                                                                 self.directory)
                manifest["variants"] = {"fp16": entry}
            save(manifest)
        self.reload()
        return self.variants["fp16"]
