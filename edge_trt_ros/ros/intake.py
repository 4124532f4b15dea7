"""Camera frames received on a thread of their own, by a helper node that holds nothing else.

rclpy's executor rebuilds its wait set in Python on every wake-up, entering each entity of
the nodes it spins: the detector has about forty (parameter and lifecycle services, its own
services, timers, every publisher's event handlers), so each frame used to cost its
executor about 1.3-1.6 ms of interpreter time, time the workers then waited for the GIL.
The subscriptions live on a helper node, ``<node>_intake`` in the detector's namespace,
with no services, no rosout and no parameters but rclpy's own, spun by its own
single-threaded executor; a frame costs about 0.9 ms there, and the detector's executor is
free for services, parameters and timers (measured in bench/README.md). The helper ignores
the process's global ROS arguments (``__node:=`` would rename it to the detector): topics
reach it already resolved, remappings applied, by the detector node.

A callback never runs after :meth:`FrameIntake.destroy_subscription` returns, so a camera
that is unsubscribed (deactivate, lazy) hands no frame to a stopped runtime. A content
filter is changed on the intake thread (:meth:`FrameIntake.call`): the middleware may
replace the reader behind the subscription, which must not happen while that thread waits
on it or takes from it.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import rclpy
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from rclpy.subscription import Subscription

SUFFIX = "_intake"
CALL_TIMEOUT_S = 5.0  # how long call() waits for the intake thread to run a function
WAKE_S = 1.0  # the intake loop's longest wait before it looks at its stop flag again

T = TypeVar("T")


def _takes_info(callback: Callable[..., None]) -> bool:
    """Whether rclpy must pass the MessageInfo; raises TypeError for a callback that takes
    neither one argument nor two (at subscribe time, not on the first frame)."""
    signature = inspect.signature(callback)
    for args, with_info in (((object(),), False), ((object(), object()), True)):
        try:
            signature.bind(*args)
        except TypeError:
            continue
        return with_info
    raise TypeError(f"a frame callback takes the message, or the message and its info: "
                    f"{callback!r} takes {signature}")


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
        self._executor: Executor | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()  # the running thread's (a new one per thread)
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
            node = rclpy.create_node(
                self.name, namespace=owner.get_namespace(), context=owner.context,
                use_global_arguments=False, start_parameter_services=False,
                enable_rosout=False, parameter_overrides=[
                    Parameter("start_type_description_service", value=False)])
            executor = SingleThreadedExecutor(context=owner.context)
            executor.add_node(node)
            self._node, self._executor = node, executor
            self._stop = threading.Event()  # one per thread: a late one never runs again
            self._thread = threading.Thread(target=self._spin, args=(executor, self._stop),
                                            name="edge-trt-intake", daemon=True)
            self._thread.start()
        return self._node

    def _spin(self, executor: Executor, stop: threading.Event) -> None:
        context = self._owner.context
        while not stop.is_set():
            try:
                executor.spin_once(timeout_sec=WAKE_S)
            except ExternalShutdownException:
                return
            except Exception as exc:
                if stop.is_set() or not context.ok():
                    return  # closing or rclpy shut down under the wait: the stop
                self._owner.get_logger().fatal(
                    f"camera intake stopped ({type(exc).__name__}: {exc}): no camera frame "
                    "is received any more; clean the node up and configure it again "
                    "(ros2 lifecycle set <node> deactivate, cleanup, configure, activate) "
                    "or restart it")
                return

    def create_subscription(self, kind: Any, topic: str, callback: Callable[..., None],
                            qos: QoSProfile) -> Subscription:
        """Subscribe ``callback`` (message, or message and info) to the resolved ``topic``."""
        node = self._start()
        gate = _Gate()
        logger = self._owner.get_logger()

        def guarded(*args: Any) -> None:
            with self._busy:
                if not gate.open:
                    return
                try:
                    callback(*args)
                except Exception as exc:  # one bad frame must not stop every camera's intake
                    logger.error(f"a frame on {topic} was dropped: its callback raised "
                                 f"{type(exc).__name__}: {exc}", throttle_duration_sec=5.0)

        # rclpy passes the MessageInfo when the callback takes two arguments: say which
        def with_info(msg: Any, info: Any) -> None:
            guarded(msg, info)

        def message_only(msg: Any) -> None:
            guarded(msg)

        subscription = node.create_subscription(
            kind, topic, with_info if _takes_info(callback) else message_only, qos)
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

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` run on the intake thread, its result or its exception returned here
        (run directly when called from that thread, or when the thread is not running)."""
        executor, thread = self._executor, self._thread
        if (executor is None or thread is None or not thread.is_alive()
                or threading.current_thread() is thread):
            return fn(*args)
        done, abandoned = threading.Event(), threading.Event()
        outcome: list[Any] = []

        def run() -> None:
            if abandoned.is_set():  # the caller gave up: do not change anything late
                done.set()
                return
            try:
                outcome.append((True, fn(*args)))
            except BaseException as exc:
                outcome.append((False, exc))
            finally:
                done.set()

        executor.create_task(run)
        if not done.wait(CALL_TIMEOUT_S):
            abandoned.set()
            raise TimeoutError(f"the camera intake thread did not run {fn.__qualname__} "
                               f"within {CALL_TIMEOUT_S:.0f} s")
        ok, value = outcome[0]
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    def set_content_filter(self, subscription: Subscription, expression: str,
                           parameters: list[str]) -> None:
        """``subscription.set_content_filter`` on the intake thread (see the module's
        docstring); raises what the middleware raised."""
        self.call(subscription.set_content_filter, expression, parameters)

    def close(self) -> None:
        """Stop the executor thread and destroy the helper node (idempotent)."""
        executor, thread, node = self._executor, self._thread, self._node
        self._executor = self._thread = self._node = None
        with self._busy:
            for gate in self._gates.values():
                gate.open = False
            self._gates.clear()
        if thread is not None:
            self._stop.set()
        if executor is not None:
            executor.wake()
        if thread is not None:
            thread.join(timeout=WAKE_S + 5.0)
        if executor is not None:
            executor.shutdown(timeout_sec=5.0)
        if node is not None:
            node.destroy_node()
