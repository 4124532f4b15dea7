"""bench/soak.py run briefly (issue 14, item 6): the real node at 30 fps with switches, its
resources sampled, the JSON the long soak writes. Nothing here is a timing threshold (the
soak's own pass/fail is for the long run); asserted: the node neither crashed nor exited
badly, the switches happened and succeeded, and the result has its keys and series."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_short_soak_writes_its_result_and_the_node_survives(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "soak.py"), "--minutes", "0.34",
         "--segment-s", "10", "--switch-every-s", "4", "--sample-s", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=240)
    assert out.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(out.read_text())
    for key in ("rss_growth_pct", "frames_lost", "crashes", "minutes",
                "frames_lost_to_switches", "passed", "checks", "samples", "segments",
                "trends_after_warmup"):
        assert key in result, key
    assert result["crashes"] == 0, result["crash_reports"]
    assert run.returncode == (0 if result["passed"] else 1), run.stderr[-3000:]
    assert result["minutes"] > 0.3 and len(result["segments"]) >= 2
    assert result["frames_sent"] > 0 and 0 <= result["frames_lost"] <= result["frames_sent"]
    samples = result["samples"]
    assert len(samples) >= 5 and all(s["rss_kb"] > 0 and s["fds"] > 0 and s["threads"] > 0
                                     for s in samples)
    switches = [s for seg in result["segments"] for s in seg["switches"]]
    assert switches and all(s["success"] for s in switches), switches
    assert result["trends_after_warmup"]["rss_kb"]["points"] >= 3
    assert isinstance(result["rss_growth_pct"], float)
