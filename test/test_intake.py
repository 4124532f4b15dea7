"""The camera intake (ros/intake.py) over real loopback DDS: frames arrive on the intake's own
thread, through a helper node that the process's ``__node:=`` remap leaves alone; no
callback runs once a subscription is destroyed; content filters change on the intake thread
while frames flow; a closed intake starts again on the next subscription."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

rclpy = pytest.importorskip("rclpy")
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from edge_trt_ros.ros.intake import FrameIntake  # noqa: E402

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


@pytest.fixture()
def context() -> Iterator[Context]:
    """A context whose global arguments rename every node, as the launch file's do."""
    ctx = Context()
    rclpy.init(args=["test", "--ros-args", "-r", "__node:=renamed"], context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


@pytest.fixture()
def rig(context: Context) -> Iterator[tuple[Node, Node, FrameIntake]]:
    """An owner node and a sender node (both ignoring the global arguments) and the owner's
    intake, closed and destroyed after the test."""
    owner = rclpy.create_node("owner", context=context, use_global_arguments=False)
    sender = rclpy.create_node("sender", context=context, use_global_arguments=False)
    intake = FrameIntake(owner)
    yield owner, sender, intake
    intake.close()
    sender.destroy_node()
    owner.destroy_node()


def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_frames_arrive_on_the_intake_thread_until_unsubscribed(context: Context) -> None:
    owner = rclpy.create_node("owner", context=context)
    sender = rclpy.create_node("sender", context=context, use_global_arguments=False)
    owner_executor = SingleThreadedExecutor(context=context)  # spins the owner only
    owner_executor.add_node(owner)
    spinner = threading.Thread(target=owner_executor.spin, daemon=True)
    spinner.start()
    intake = FrameIntake(owner)
    got: list[tuple[int, str, object]] = []
    lock = threading.Lock()

    def on_frame(msg: Header, info: object) -> None:  # two parameters: rclpy passes the info
        with lock:
            got.append((msg.stamp.sec, threading.current_thread().name, info))

    try:
        assert owner.get_name() == "renamed"  # the remap applies to the owner...
        topic = "/intake_test/image"
        sub = intake.create_subscription(Header, topic, on_frame, RELIABLE)
        def names() -> list[str]:
            return [name for name, _ in owner.get_node_names_and_namespaces()]

        assert _wait(lambda: "renamed_intake" in names()), names()
        assert names().count("renamed") == 1  # ...not to the helper, named after it
        pub = sender.create_publisher(Header, topic, RELIABLE)
        assert _wait(lambda: pub.get_subscription_count() == 1)
        for sec in range(1, 6):
            pub.publish(Header(stamp=rclpy.time.Time(seconds=sec).to_msg()))
        assert _wait(lambda: len(got) == 5), got
        assert [sec for sec, _, _ in got] == [1, 2, 3, 4, 5]
        assert {thread for _, thread, _ in got} == {"edge-trt-intake"}
        assert all(info is not None for _, _, info in got)

        intake.destroy_subscription(sub)
        count = len(got)
        assert _wait(lambda: pub.get_subscription_count() == 0)
        pub.publish(Header(stamp=rclpy.time.Time(seconds=9).to_msg()))
        time.sleep(0.5)
        assert len(got) == count  # the reader is gone from DDS too: the frame reaches nothing
    finally:
        intake.close()
        intake.close()  # idempotent: deactivate and destroy both close
        owner_executor.shutdown()
        spinner.join(timeout=5)
        sender.destroy_node()
        owner.destroy_node()


def test_a_callback_running_while_unsubscribing_finishes_first(
        rig: tuple[Node, Node, FrameIntake]) -> None:
    """destroy_subscription waits for a callback already inside: after it returns, the
    runtime behind the callback may be stopped."""
    _, sender, intake = rig
    inside, release = threading.Event(), threading.Event()
    finished: list[float] = []

    def slow(msg: Header) -> None:
        inside.set()
        release.wait(5.0)
        finished.append(time.monotonic())

    try:
        sub = intake.create_subscription(Header, "/intake_test/slow", slow, RELIABLE)
        pub = sender.create_publisher(Header, "/intake_test/slow", RELIABLE)
        assert _wait(lambda: pub.get_subscription_count() == 1)
        pub.publish(Header())
        assert inside.wait(10.0)
        threading.Timer(0.3, release.set).start()
        intake.destroy_subscription(sub)
        returned = time.monotonic()
        assert finished and finished[0] <= returned
    finally:
        release.set()


def test_calls_run_on_the_intake_thread_and_filters_change_while_frames_flow(
        rig: tuple[Node, Node, FrameIntake]) -> None:
    _, sender, intake = rig
    got: list[int] = []

    def on_frame(msg: Header) -> None:
        got.append(msg.stamp.nanosec)

    def boom() -> None:
        raise ValueError("raised on the intake thread")

    assert intake.call(threading.current_thread) is threading.current_thread()  # no thread
    sub = intake.create_subscription(Header, "/intake_test/filtered", on_frame, RELIABLE)
    assert intake.call(lambda: threading.current_thread().name) == "edge-trt-intake"
    with pytest.raises(ValueError, match="on the intake thread"):
        intake.call(boom)
    filtered_on: list[str] = []
    set_filter = sub.set_content_filter

    def recorded(expression: str, parameters: list[str]) -> None:
        filtered_on.append(threading.current_thread().name)
        set_filter(expression, parameters)

    sub.set_content_filter = recorded  # type: ignore[method-assign]
    pub = sender.create_publisher(Header, "/intake_test/filtered", RELIABLE)
    assert _wait(lambda: pub.get_subscription_count() == 1)
    stop = threading.Event()
    sent = [0]

    def stream() -> None:  # 200 Hz, nanosec counting up
        while not stop.is_set():
            sent[0] += 1
            pub.publish(Header(stamp=rclpy.time.Time(nanoseconds=sent[0]).to_msg()))
            time.sleep(0.005)

    feeder = threading.Thread(target=stream, daemon=True)
    feeder.start()
    try:
        assert _wait(lambda: len(got) > 10)
        for _ in range(3):  # on and off again while frames arrive
            intake.set_content_filter(sub, "stamp.nanosec >= %0", ["1000000000"])
            if not sub.is_cft_enabled:
                pytest.skip("this RMW ignores content filters")
            last_before = sent[0]  # published before the filter was on (or just as)
            time.sleep(0.8)
            assert sent[0] > last_before + 20 and max(got) <= last_before + 1
            intake.set_content_filter(sub, "", [])
            assert _wait(lambda n=sent[0]: max(got) > n)  # flowing again
        assert filtered_on == ["edge-trt-intake"] * 6
    finally:
        stop.set()
        feeder.join(timeout=5)
    assert got == sorted(got)


def test_a_closed_intake_starts_again_on_the_next_subscription(
        rig: tuple[Node, Node, FrameIntake]) -> None:
    _, sender, intake = rig
    got: list[str] = []
    threads: list[threading.Thread] = []

    def on_frame(msg: Header) -> None:
        got.append(msg.frame_id)
        threads.append(threading.current_thread())

    pub = sender.create_publisher(Header, "/intake_test/again", RELIABLE)
    for round_ in ("first", "second"):
        intake.create_subscription(Header, "/intake_test/again", on_frame, RELIABLE)
        assert _wait(lambda: pub.get_subscription_count() == 1)
        pub.publish(Header(frame_id=round_))
        assert _wait(lambda r=round_: r in got), got
        intake.close()  # deactivate + cleanup: thread stopped, helper node destroyed
        assert _wait(lambda: pub.get_subscription_count() == 0)
        assert not threads[-1].is_alive()
    assert got == ["first", "second"]
    assert threads[0] is not threads[1]


def test_a_callback_taking_neither_one_argument_nor_two_is_refused_at_subscribe(
        rig: tuple[Node, Node, FrameIntake]) -> None:
    _, _, intake = rig
    with pytest.raises(TypeError, match="the message, or the message and its info"):
        intake.create_subscription(Header, "/intake_test/arity", lambda a, b, c: None, RELIABLE)
