"""Camera frames received on a thread of their own, by a helper node that holds nothing else.

rclpy's executor rebuilds its wait set in Python on every wake-up, entering each entity of
the nodes it spins: the detector has about forty (parameter and lifecycle services, its own
services, timers, every publisher's event handlers), so each frame used to cost its
executor about 1.3-1.6 ms of interpreter time, time the workers then waited for the GIL.
The subscriptions live on a helper node, ``<node>_intake`` in the detector's namespace,
with no parameters, no services and no rosout, spun by its own single-threaded executor;
a frame costs about 0.9 ms there, and the detector's executor is free for services,
parameters and timers (measured in bench/README.md). The helper ignores the process's
global ROS arguments (``__node:=`` would rename it to the detector): topics reach it
already resolved, remappings applied, by the detector node.

A callback never runs after :meth:`FrameIntake.destroy_subscription` returns, so a camera
that is unsubscribed (deactivate, lazy) hands no frame to a stopped runtime.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.subscription import Subscription

SUFFIX = "_intake"


class _Gate:
    """Whether one subscription's callback may still run (closed under the busy lock)."""

    __slots__ = ("open",)

    def __init__(self) -> None:
        self.open = True


class FrameIntake:
    """The helper node and its executor thread, made with the first subscription."""

    def __init__(self, owner: Node) -> None:
        self._owner = owner
        self._node: Node | None = None
        self._executor: SingleThreadedExecutor | None = None
        self._thread: threading.Thread | None = None
        # Held while a callback runs; reentrant: on Humble a frame's callback may
        # resubscribe its own camera (lazy_unsubscribe polls per frame there).
        self._busy = threading.RLock()
        self._gates: dict[Subscription, _Gate] = {}

    @property
    def name(self) -> str:
        return self._owner.get_name() + SUFFIX

    def _start(self) -> Node:
        if self._node is None:
            owner = self._owner
            node = rclpy.create_node(self.name, namespace=owner.get_namespace(),
                                     context=owner.context, use_global_arguments=False,
                                     start_parameter_services=False, enable_rosout=False)
            executor = SingleThreadedExecutor(context=owner.context)
            executor.add_node(node)
            self._node, self._executor = node, executor
            self._thread = threading.Thread(target=self._spin, name="edge-trt-intake",
                                            daemon=True)
            self._thread.start()
        return self._node

    def _spin(self) -> None:
        assert self._executor is not None
        with contextlib.suppress(ExternalShutdownException):  # rclpy shut down: the stop
            self._executor.spin()

    def create_subscription(self, kind: Any, topic: str, callback: Callable[..., None],
                            qos: QoSProfile) -> Subscription:
        """Subscribe ``callback`` (message, or message and info) to the resolved ``topic``."""
        node = self._start()
        gate = _Gate()

        def guarded(*args: Any) -> None:
            with self._busy:
                if gate.open:
                    callback(*args)

        guarded.__wrapped__ = callback  # type: ignore[attr-defined]  # rclpy reads its arity
        subscription = node.create_subscription(kind, topic, guarded, qos)
        self._gates[subscription] = gate
        return subscription

    def destroy_subscription(self, subscription: Subscription) -> None:
        """Unsubscribe; returns once no callback of it runs or will run."""
        with self._busy:
            gate = self._gates.pop(subscription, None)
            if gate is not None:
                gate.open = False
        if self._node is not None:
            self._node.destroy_subscription(subscription)

    def set_content_filter(self, subscription: Subscription, expression: str,
                           parameters: list[str]) -> None:
        """``subscription.set_content_filter``, then wake the executor: the middleware may
        replace the reader behind it, and an executor left waiting on the old one would
        never see a frame again."""
        subscription.set_content_filter(expression, parameters)
        if self._executor is not None:
            self._executor.wake()

    def close(self) -> None:
        """Stop the executor thread and destroy the helper node (idempotent)."""
        executor, thread, node = self._executor, self._thread, self._node
        self._executor = self._thread = self._node = None
        with self._busy:
            for gate in self._gates.values():
                gate.open = False
            self._gates.clear()
        if executor is not None:
            executor.shutdown(timeout_sec=5.0)
        if thread is not None:
            thread.join(timeout=5.0)
        if node is not None:
            node.destroy_node()
