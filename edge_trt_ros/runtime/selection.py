"""From "precision P, fusion profile F, force?" to the exact engine spec, or a refusal.

One function decides, for configure, the parameters and the ``~/switch_engine`` service
alike: the fusion profile (``auto`` resolved by the fusion table's rule), the variant file
(the catalog's pick for this backend and device), and the accuracy guard (a variant whose
mAP@0.5 drop against fp32 exceeds ``max_accuracy_drop``, overall or in any lux bin, needs
``force``). A refusal is a :class:`SwitchRefused` whose message says why and what to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from edge_trt_ros.choices import AUTO
from edge_trt_ros.engines.fusion import resolve_fusion_profile
from edge_trt_ros.engines.registry import Capabilities
from edge_trt_ros.engines.spec import EngineSpec
from edge_trt_ros.errors import EdgeTrtError, ManifestError
from edge_trt_ros.variants.catalog import Catalog, Variant


class SwitchRefused(EdgeTrtError):
    """A requested engine that cannot or must not run; the message is for the operator."""


class Fp16Missing(SwitchRefused):
    """No fp16 variant yet, and this plan was not allowed to convert one (check only)."""


@dataclass(frozen=True)
class Plan:
    """The engine to open, with everything an operator should know about the choice."""

    spec: EngineSpec
    variant: Variant
    forced: bool  # the variant fails the accuracy guard and ``force`` let it through
    notes: tuple[str, ...] = field(default=())  # e.g. "accuracy not measured", profile 'auto'


def guard_drops(variant: Variant, bins: Sequence[str] | None = None) -> dict[str, float] | None:
    """mAP@0.5 drops against fp32 where the guard applies (``bins``: names as in the
    manifest, ``overall`` included; None = all); None when the variant was not evaluated."""
    if variant.precision == "fp32" and variant.evaluation is not None:
        return {}
    measured = (variant.evaluation or {}).get("map50_drop_vs_fp32")
    if not measured:
        return None
    return {k: float(v) for k, v in measured.items() if bins is None or k in bins}


def plan_engine(
    catalog: Catalog,
    base: EngineSpec,
    precision: str,
    fusion_profile: str,
    *,
    hardware_fusion_default: str,
    max_accuracy_drop: float,
    force: bool = False,
    capabilities: Capabilities | None = None,
    make_fp16: bool = True,
    guard_bins: Sequence[str] | None = None,
) -> Plan:
    """The spec for (precision, fusion_profile) on ``base``'s backend, device and threads.

    ``make_fp16`` allows converting a missing fp16 variant now (seconds); pass False to only
    check. ``guard_bins``: where the guard applies (``overall`` and lux bin names, e.g. the
    bins the current illuminance falls in); None = overall and every bin. Raises
    :class:`SwitchRefused`.
    """
    notes: list[str] = []
    if capabilities is not None:
        refusal = capabilities.refusal(base.backend, base.device)
        if refusal is not None:
            raise SwitchRefused(refusal)
    try:
        profile, why = resolve_fusion_profile(fusion_profile, hardware_fusion_default)
    except ValueError as exc:
        raise SwitchRefused(str(exc)) from None
    if fusion_profile == AUTO:
        notes.append(f"fusion profile {why} -> {profile}")
    try:
        try:
            variant = catalog.pick(precision, base.backend, base.device_kind, max_accuracy_drop)
        except ManifestError as exc:
            if precision != "fp16":
                raise
            if not make_fp16:
                raise Fp16Missing(f"{exc} (it is converted when the switch runs)") from None
            variant = catalog.ensure_fp16()
    except ManifestError as exc:
        raise SwitchRefused(str(exc)) from None
    except (OSError, ValueError) as exc:  # the on-demand fp16 conversion failed
        raise SwitchRefused(f"cannot make the fp16 variant of {catalog.model_path.name}: "
                            f"{exc}") from exc
    drops = guard_drops(variant, guard_bins)
    forced = False
    failing = {k: v for k, v in (drops or {}).items() if v > max_accuracy_drop + 1e-9}
    if failing:
        detail = ", ".join(f"{k} {v * 100:.2f}" for k, v in failing.items())
        if not force:
            raise SwitchRefused(
                f"{variant.name} fails the accuracy guard: mAP@0.5 drops "
                f"{max(failing.values()) * 100:.2f} points against fp32 ({detail}; "
                f"max_accuracy_drop {max_accuracy_drop * 100:.2f}); set force to run it anyway")
        forced = True
        notes.append(f"FORCED past the accuracy guard ({detail} points lost)")
    elif drops is None and variant.precision != "fp32":
        notes.append(f"accuracy of {variant.name} not measured: "
                     f"`{catalog.build_command()}` measures it")
    spec = base.with_variant(str(variant.path), variant.precision, profile,
                             variant.calibration_key)
    return Plan(spec, variant, forced, tuple(notes))
