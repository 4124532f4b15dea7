"""Which engines the node keeps open beside the active one: the ``keep_ready`` entries.

A switch to an engine kept ready is a swap of references, no open and no warm-up next to the
workers (:class:`~edge_trt_ros.runtime.switcher.EngineSwitcher`); each one kept costs the
memory of an open engine. Entries are ``precision/fusion_profile`` (``int8/max``,
``fp16/auto``) or ``all``: every pair this backend runs and the accuracy guard lets through.
"""

from __future__ import annotations

from collections.abc import Sequence

from edge_trt_ros.choices import AUTO, FUSION_PROFILES, PRECISIONS

ALL = "all"


def parse_keep_ready(entries: Sequence[str]) -> tuple[tuple[str, str], ...] | None:
    """The (precision, fusion profile) pairs named, in order without repeats; None for
    ``all``; ``()`` for none (empty entries are ignored: ``['']`` is ROS's empty list).
    Raises ValueError naming the first entry that is neither."""
    entries = [e.strip() for e in entries if e.strip()]
    if ALL in entries:
        if len(entries) > 1:
            raise ValueError(f"keep_ready: {ALL!r} already names every pair; give it alone "
                             f"(got {entries})")
        return None
    pairs: list[tuple[str, str]] = []
    for entry in entries:
        precision, _, profile = entry.partition("/")
        if precision not in PRECISIONS or profile not in (*FUSION_PROFILES, AUTO):
            raise ValueError(
                f"keep_ready: {entry!r} is not precision/fusion_profile (precision one of "
                f"{', '.join(PRECISIONS)}; profile one of {', '.join(FUSION_PROFILES)}, "
                f"{AUTO}; e.g. int8/max) or {ALL!r}")
        if (precision, profile) not in pairs:
            pairs.append((precision, profile))
    return tuple(pairs)


def every_pair() -> tuple[tuple[str, str], ...]:
    return tuple((p, f) for p in PRECISIONS for f in FUSION_PROFILES)


__all__ = ["ALL", "every_pair", "parse_keep_ready"]
