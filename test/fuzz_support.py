"""Shared settings of the property-based fuzz tests (test_fuzz_*.py).

One bounded budget keeps the suite's runtime modest: ``EDGE_TRT_FUZZ_EXAMPLES`` (default 60)
examples per property, no per-example deadline (a shared CI core is slow at times; a hang is
still caught by pytest-timeout). For a long hunt: ``EDGE_TRT_FUZZ_EXAMPLES=5000``.
Every example a property runs is counted; with ``EDGE_TRT_FUZZ_REPORT=path.json`` the counts
are merged into that file at the end of each module (docs/reliability.md quotes them).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("EDGE_TRT_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# Properties that open an ONNX Runtime session per example get a fifth of the budget.
FUZZ_SLOW = settings(FUZZ, max_examples=max(10, EXAMPLES // 5))

cases: Counter[str] = Counter()


def count(name: str) -> None:
    cases[name] += 1


def write_report() -> None:
    target = os.environ.get("EDGE_TRT_FUZZ_REPORT")
    if not target:
        return
    path = Path(target)
    merged: Counter[str] = Counter(json.loads(path.read_text())) if path.exists() else Counter()
    merged.update(cases)
    cases.clear()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(sorted(merged.items())), indent=2) + "\n")
