"""Which cores each CPU worker runs on.

A worker drops the GIL for every engine run and takes it back after; each hand-over wakes a
thread, and Linux tends to wake it on the core of the thread that woke it, where it queues
behind a running engine while another core idles. On the project's 2-core CPU (int8, two
workers, frames always waiting) 8-9 % of the machine stayed idle with the workers unpinned
and 4 % pinned, and the node answered a median 116 frames/s pinned against 103 unpinned
(bench/README.md). Pinning each worker to its own share of the cores the process may use
keeps one engine per core; the cores left over (when they do not divide evenly) and every
other thread stay free to the scheduler.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("edge_trt_ros.runtime.affinity")


def allowed_cores() -> frozenset[int]:
    """The cores this process may run on (its affinity mask, e.g. from taskset or a cgroup);
    empty where the OS cannot say (not Linux)."""
    try:
        return frozenset(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return frozenset()


def worker_cores(workers: int, allowed: frozenset[int]) -> tuple[frozenset[int], ...]:
    """Worker i's cores: the allowed cores in order, cut into ``workers`` equal runs. Empty
    (no pinning) for one worker, which has no other worker to collide with, and for more
    workers than cores, which must share cores anyway."""
    cores = sorted(allowed)
    if workers < 2 or workers > len(cores):
        return ()
    share = len(cores) // workers
    return tuple(frozenset(cores[i * share:(i + 1) * share]) for i in range(workers))


def pin_this_thread(cores: frozenset[int]) -> None:
    """Run the calling thread on ``cores`` only (threads it starts later inherit that);
    where the OS refuses, say so and change nothing."""
    try:
        os.sched_setaffinity(0, cores)  # 0 = the calling thread on Linux
    except (AttributeError, OSError) as exc:
        log.warning("could not pin a worker to cores %s (%s): it runs wherever the kernel "
                    "puts it; set pin_workers false to stop trying", sorted(cores), exc)


def placement(cores: tuple[frozenset[int], ...]) -> str:
    """How the workers are placed, for logs and reports: "pinned to cores 0 | 1" (one run of
    cores per worker) or "not pinned"."""
    if not cores:
        return "not pinned"
    return "pinned to cores " + " | ".join(",".join(map(str, sorted(c))) for c in cores)
