"""What each variant costs on this device, learnt from the live windows it ran.

A row starts from a seed (a benchmark or manifest figure) when one is given; every live
window of the running variant is folded in with an exponential moving average, so the table
follows the power curve as the device heats up. A variant never measured here gets a prior:
the reference row scaled by a precision factor, always marked ``prior`` so a reason line
and the audit say the figure is a guess until that variant has run.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edge_trt_ros.adaptive.guard import Accuracy
from edge_trt_ros.adaptive.inputs import LiveWindow
from edge_trt_ros.variants.catalog import Catalog

MEASURED, SEEDED, PRIOR, UNKNOWN = "measured", "seeded", "prior", "unknown"
# Energy per frame relative to fp32 before anything is measured (fps scales by the inverse).
# A guess for the first choice only: on a GPU without int8 kernels int8 is slower than fp32
# (docs/results/gpu_ort.md), which the first measured window then shows.
PRIOR_COST: dict[str, float] = {"fp32": 1.0, "fp16": 0.8, "int8": 0.5}


@dataclass(frozen=True)
class Figures:
    """Efficiency of one variant: capacity fps, power and energy per frame."""

    fps: float | None = None  # frames/s it can serve (capacity)
    power_w: float | None = None  # mean power while it ran
    mj_per_frame: float | None = None
    samples: int = 0  # live windows folded in
    source: str = UNKNOWN  # measured | seeded | prior | unknown
    detail: str = ""  # where a seed or prior came from; the power scope once measured
    estimated: bool = True  # the power figure is modelled, not read from a sensor

    def to_dict(self) -> dict[str, Any]:
        return {"fps": _r(self.fps), "power_w": _r(self.power_w),
                "mj_per_frame": _r(self.mj_per_frame), "samples": self.samples,
                "source": self.source, "detail": self.detail, "estimated": self.estimated}


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(float(x), nd)


@dataclass(frozen=True)
class VariantRow:
    """One candidate: identity, accuracy, efficiency."""

    name: str
    precision: str
    accuracy: Accuracy
    figures: Figures = field(default_factory=Figures)


def _ewma(old: float | None, new: float | None, alpha: float) -> float | None:
    if new is None or not math.isfinite(new):
        return old
    return new if old is None else (1 - alpha) * old + alpha * new


class EfficiencyTable:
    """Per-variant figures on this device; not thread-safe (the controller's thread owns it)."""

    def __init__(self, variants: Iterable[tuple[str, str, Accuracy]], *, alpha: float = 0.3,
                 prior_cost: Mapping[str, float] | None = None) -> None:
        self.alpha = alpha
        self.prior_cost = dict(prior_cost or PRIOR_COST)
        self._rows: dict[str, VariantRow] = {
            name: VariantRow(name, precision, accuracy) for name, precision, accuracy in variants}
        if not self._rows:
            raise ValueError("an efficiency table needs at least one variant")

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any] | str | os.PathLike[str],
                      names: Iterable[str] | None = None, **kw: Any) -> EfficiencyTable:
        """Rows from a variant manifest (a dict or a ``variants.json`` path): accuracy from
        each entry's ``evaluation``; seeds from an entry's ``efficiency`` block when present
        (``fps``, ``power_w``, ``mj_per_frame``, ``measured``/``how``)."""
        data: Mapping[str, Any] = manifest if isinstance(manifest, Mapping) else json.loads(
            Path(manifest).read_text())
        entries: Mapping[str, Any] = data["variants"]
        wanted = list(names) if names is not None else list(entries)
        table = cls(((n, entries[n]["precision"],
                      Accuracy.from_evaluation(entries[n].get("evaluation"),
                                               entries[n]["precision"])) for n in wanted), **kw)
        for n in wanted:
            eff = entries[n].get("efficiency")
            if eff:
                table.seed(n, fps=eff.get("fps"), power_w=eff.get("power_w"),
                           mj_per_frame=eff.get("mj_per_frame"),
                           detail=str(eff.get("how") or eff.get("measured") or "manifest"),
                           estimated=bool(eff.get("estimated", True)))
        return table

    @classmethod
    def from_catalog(cls, catalog: Catalog, backend: str, device_kind: str,
                     **kw: Any) -> EfficiencyTable:
        """Rows for the variants this backend/device serves (one per precision, as the
        runtime's switch would pick them)."""
        picks = catalog.available(backend, device_kind)
        return cls(((v.name, v.precision, Accuracy.from_evaluation(v.evaluation, v.precision))
                    for v in picks.values()), **kw)

    # -- updates --------------------------------------------------------------------------
    def seed(self, name: str, *, fps: float | None = None, power_w: float | None = None,
             mj_per_frame: float | None = None, detail: str = "", estimated: bool = True) -> None:
        """Figures from a benchmark or the manifest, used until live windows replace them."""
        row = self._rows[name]
        if mj_per_frame is None and power_w is not None and fps:
            mj_per_frame = 1000.0 * power_w / fps
        self._rows[name] = replace(row, figures=Figures(fps, power_w, mj_per_frame, 0, SEEDED,
                                                        detail, estimated))

    def observe(self, window: LiveWindow) -> bool:
        """Fold one live window of ``window.variant`` in; False when it cannot count (an
        unknown variant, no frames)."""
        row = self._rows.get(window.variant)
        if row is None or window.frames <= 0:
            return False
        old = row.figures if row.figures.source == MEASURED else Figures()
        a = self.alpha
        fig = Figures(
            fps=_ewma(old.fps, window.capacity_fps, a),
            power_w=_ewma(old.power_w, window.power_w, a),
            mj_per_frame=_ewma(old.mj_per_frame, window.energy_per_frame_mj, a),
            samples=old.samples + 1, source=MEASURED,
            detail=window.scope or "live window", estimated=window.estimated)
        self._rows[window.variant] = replace(row, figures=fig)
        return True

    # -- reading --------------------------------------------------------------------------
    def names(self) -> tuple[str, ...]:
        return tuple(self._rows)

    def row(self, name: str) -> VariantRow:
        return self.rows_by_name()[name]

    def rows_by_name(self) -> dict[str, VariantRow]:
        return {r.name: r for r in self.rows()}

    def rows(self) -> tuple[VariantRow, ...]:
        """Every row, with a prior filled in where nothing is known (a frozen snapshot)."""
        reference = self._reference()
        out = []
        for row in self._rows.values():
            fig = row.figures
            if fig.mj_per_frame is None and reference is not None \
                    and reference.name != row.name and fig.source != MEASURED:
                out.append(replace(row, figures=self._prior(row, reference)))
            else:
                out.append(row)
        return tuple(out)

    def _reference(self) -> VariantRow | None:
        """The row priors are scaled from: fp32 when it has figures, else any measured."""
        known = [r for r in self._rows.values()
                 if r.figures.source in (MEASURED, SEEDED) and r.figures.mj_per_frame]
        known.sort(key=lambda r: (r.precision != "fp32", r.figures.source != MEASURED))
        return known[0] if known else None

    def _prior(self, row: VariantRow, ref: VariantRow) -> Figures:
        """The reference's figures scaled by the precision factor, for what ``row`` lacks
        (a seed that gave only fps keeps its fps)."""
        k = self.prior_cost.get(row.precision, 1.0) / self.prior_cost.get(ref.precision, 1.0)
        f, own = ref.figures, row.figures
        detail = f"mJ/frame {ref.name} x {k:.2f} ({row.precision} precision factor; not measured)"
        if own.fps is not None:
            detail = f"fps {own.detail or 'seeded'}; " + detail
        return Figures(
            fps=own.fps if own.fps is not None else None if f.fps is None else f.fps / k,
            power_w=None,  # what it draws follows from mJ/frame at the stream's rate
            mj_per_frame=None if f.mj_per_frame is None else f.mj_per_frame * k,
            samples=0, source=PRIOR, detail=detail, estimated=True)
