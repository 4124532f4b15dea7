"""The benchmark result format, versioned: what ``edge-trt benchmark`` writes and reads back.

A result is one JSON object; ``schema`` names its version. :data:`JSON_SCHEMA` is the
format as a JSON Schema (draft 2020-12) document, so another tool can check a file
without this package; :func:`validate` checks the same rules here (the subset of JSON
Schema it uses: ``type``, ``required``, ``properties``, ``items``, ``enum``,
``additionalProperties`` as a schema). docs/benchmark.md describes every field.

Version rule: a field may be added within a version; renaming, removing or changing the
meaning of one makes a new version, and :func:`load_result` refuses versions it does not
know rather than misreading them.
"""

from __future__ import annotations

import json
import os
from typing import Any

SCHEMA = "edge_trt_ros.benchmark/1"

_NUM = {"type": ["number", "null"]}
_STR = {"type": ["string", "null"]}
_BOOL = {"type": ["boolean", "null"]}
_NUMS = {"type": "array", "items": {"type": ["number", "null"]}}

SPREAD = {
    "type": ["object", "null"],
    "description": "values of one figure over the repeats (or parts) of a window, and what "
                   "one value is",
    "required": ["values", "what"],
    "properties": {"values": _NUMS, "what": {"type": "string"}},
}

LATENCY = {
    "type": "object",
    "description": "milliseconds; null where the measurement did not record it",
    "required": ["p50", "p95", "p99"],
    "properties": {k: _NUM for k in ("min", "p50", "p90", "p95", "p99", "max", "mean")},
}

ACCURACY = {
    "type": ["object", "null"],
    "description": "COCO mAP@0.5 of the variant; null when never measured",
    "required": ["map50", "per_lux_bin_map50", "source"],
    "properties": {
        "map50": _NUM,
        "map50_95": _NUM,
        "per_lux_bin_map50": {"type": "object", "additionalProperties": _NUM},
        "map50_drop_vs_fp32": {"type": ["object", "null"], "additionalProperties": _NUM},
        "worst_drop": _NUM,
        "within_guard": _BOOL,
        "source": {"enum": ["manifest", "measured", "imported"]},
        "frames": {"type": ["integer", "null"]},
        "fusion_profile": _STR,
        "how": _STR,
    },
}

NODE = {
    "type": "object",
    "description": "figures through the running node (edge-trt benchmark --node)",
    "required": ["peak_fps", "rate_hz", "at_rate"],
    "properties": {
        "peak_fps": _NUM,
        "peak_fps_spread": SPREAD,
        "peak_frames_lost": {"type": ["integer", "null"]},
        "rate_hz": {"type": "number"},
        "at_rate": {
            "type": "object",
            "required": ["latency_ms", "frames_sent", "missed_frames"],
            "properties": {
                "latency_ms": LATENCY,
                "frames_sent": {"type": "integer"},
                "frames_answered": {"type": "integer"},
                "missed_frames": {"type": "integer"},
                "jitter_ms": {"type": ["object", "null"]},
                "mean_watts": _NUM,
                "mj_per_frame": _NUM,
                "mj_per_frame_above_idle": _NUM,
            },
        },
        "switch_ms": _NUMS,
    },
}

ENTRY = {
    "type": "object",
    "required": ["label", "variant", "precision", "fusion_profile", "fps", "latency_ms",
                 "power", "efficiency", "accuracy", "frontier"],
    "properties": {
        "label": {"type": "string", "description": "variant/fusion_profile, unique"},
        "variant": {"type": "string", "description": "manifest name (fp32, int8-ort, ...)"},
        "precision": {"enum": ["fp32", "fp16", "int8"]},
        "fusion_profile": {"enum": ["max", "balanced", "conservative", "none"]},
        "file": _STR,
        "sha256": _STR,
        "recipe": _STR,
        "served": {"type": ["boolean", "null"],
                   "description": "the file the node runs for this precision here"},
        "frames": {"type": ["integer", "null"]},
        "seconds": _NUM,
        "fps": _NUM,
        "fps_spread": SPREAD,
        "latency_ms": LATENCY,
        "latency_histogram": {
            "type": ["object", "null"],
            "required": ["edges_ms", "counts"],
            "properties": {"edges_ms": _NUMS, "counts": {"type": "array",
                                                         "items": {"type": "integer"}}},
        },
        "stages_ms": {"type": ["object", "null"], "additionalProperties": _NUM},
        "power": {
            "type": "object",
            "required": ["mean_watts", "estimated", "scope", "source"],
            "properties": {"mean_watts": _NUM, "watts_spread": SPREAD, "energy_j": _NUM,
                           "method": _STR, "estimated": {"type": "boolean"},
                           "scope": _STR, "source": _STR},
        },
        "efficiency": {
            "type": "object",
            "required": ["mj_per_frame", "fps_per_watt", "tops_per_watt"],
            "properties": {k: _NUM for k in (
                "mj_per_frame", "mj_per_frame_above_idle", "fps_per_watt",
                "fps_per_watt_above_idle", "tops_per_watt", "tops_per_watt_above_idle")}
            | {"mj_per_frame_spread": SPREAD},
        },
        "accuracy": ACCURACY,
        "frontier": {"type": "boolean",
                     "description": "on the Pareto frontier of mJ/frame (lower) vs mAP@0.5 "
                                    "(higher)"},
        "node": NODE,
        "settings": {"type": ["object", "null"]},
    },
}

JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA,
    "title": "edge_trt_ros benchmark result",
    "type": "object",
    "required": ["schema", "kind", "source", "environment", "config", "power", "entries",
                 "frontier"],
    "properties": {
        "schema": {"enum": [SCHEMA]},
        "kind": {"enum": ["engine", "node"],
                 "description": "engine: the detector pipeline in this process; node: the "
                                "running ROS node fed over DDS"},
        "title": {"type": "string"},
        "source": {
            "type": "object",
            "required": ["tool"],
            "properties": {"tool": {"type": "string"}, "imported_from": _STR, "note": _STR},
        },
        "environment": {"type": "object", "required": ["date", "machine"]},
        "config": {"type": "object",
                   "required": ["backend", "device", "model", "macs_per_frame", "schedule"]},
        "power": {
            "type": "object",
            "required": ["sensor", "scope", "source", "estimated", "idle"],
            "properties": {
                "sensor": {"type": "string"}, "scope": {"type": "string"},
                "source": {"type": "string"}, "estimated": {"type": "boolean"},
                "idle": {"type": ["object", "null"],
                         "required": ["watts", "seconds"],
                         "properties": {"watts": _NUM, "seconds": _NUM, "when": _STR}},
                "idle_after": {"type": ["object", "null"]},
            },
        },
        "entries": {"type": "array", "items": ENTRY},
        "skipped": {"type": "array", "items": {"type": "object",
                                               "required": ["label", "reason"]}},
        "frontier": {"type": "array", "items": {"type": "string"},
                     "description": "labels on the frontier, cheapest first"},
        "notes": {"type": "array", "items": {"type": "string"}},
    },
}

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "boolean": (bool,),
    "integer": (int,), "number": (int, float), "null": (type(None),),
}


def _is(value: Any, name: str) -> bool:
    if name in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES[name])


def _check(value: Any, schema: dict[str, Any], where: str, out: list[str]) -> None:
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        if not any(_is(value, n) for n in names):
            out.append(f"{where}: expected {' or '.join(names)}, got {type(value).__name__}")
            return
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                out.append(f"{where}: missing {key!r}")
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key in props:
                _check(item, props[key], f"{where}.{key}", out)
            elif isinstance(extra, dict):
                _check(item, extra, f"{where}.{key}", out)
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            _check(item, schema["items"], f"{where}[{i}]", out)


def validate(result: Any) -> list[str]:
    """Every way ``result`` departs from :data:`JSON_SCHEMA` (empty when it conforms)."""
    problems: list[str] = []
    _check(result, JSON_SCHEMA, "result", problems)
    if isinstance(result, dict) and isinstance(result.get("entries"), list):
        labels = [e.get("label") for e in result["entries"] if isinstance(e, dict)]
        dupes = sorted({str(lab) for lab in labels if labels.count(lab) > 1})
        if dupes:
            problems.append(f"result.entries: duplicate labels {dupes}")
    return problems


def load_result(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A result file, checked; ValueError naming the file and what is wrong with it."""
    try:
        with open(path, encoding="utf-8") as f:
            result = json.load(f)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not JSON ({exc})") from exc
    version = result.get("schema") if isinstance(result, dict) else None
    if version != SCHEMA:
        hint = (" (bench/gpu_ort.py output: convert it with `edge-trt benchmark --import-gpu-ort "
                f"{path}`)" if isinstance(result, dict) and result.get("benchmark") == "gpu_ort"
                else "")
        raise ValueError(f"{path} is not a benchmark result of {SCHEMA} (schema: "
                         f"{version!r}){hint}")
    problems = validate(result)
    if problems:
        raise ValueError(f"{path} does not match {SCHEMA}: " + "; ".join(problems[:5])
                         + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""))
    return result
