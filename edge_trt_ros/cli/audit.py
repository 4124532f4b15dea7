"""``edge-trt audit LOG``: what the adaptive controller's audit log says happened.

Reads the log and its rotated files (``LOG.1`` oldest, ``LOG.2``, ..., then ``LOG``),
skipping a torn last line (and saying so), and prints switches per hour, energy per frame
against always running fp32, time per variant, guard refusals and forced switches; ``--json``
prints the same as JSON. Exit code 0, or 1 with ``--strict`` when lines were unreadable or
records are missing (gaps in ``seq``).
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("audit", help="summarise an adaptive-controller audit log")
    p.add_argument("log", help="the audit log (JSON lines; rotated LOG.N files are read too)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when a line was unreadable or records are missing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge_trt_ros.adaptive.audit import read_audit
    from edge_trt_ros.adaptive.summary import format_summary, summarise

    read = read_audit(args.log)
    summary = summarise(read)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    if args.strict and (read.skipped or read.seq_gaps):
        return 1
    return 0
