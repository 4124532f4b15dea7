"""The detector as a managed (lifecycle) node.

configure loads the model (never between frames), activate subscribes and publishes,
deactivate stops, cleanup releases the engine. ``autostart`` (default true) runs configure
and activate at start so a plain ``ros2 run``/launch works without a lifecycle manager.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
)
from rclpy.subscription import Subscription
from rclpy.timer import Timer
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray, LabelInfo

from edge_trt_ros.detector import Detector
from edge_trt_ros.errors import EngineError, ImageFormatError, ModelLayoutError
from edge_trt_ros.macs import count_macs
from edge_trt_ros.msg import EfficiencyStatus
from edge_trt_ros.power.live import LivePower
from edge_trt_ros.resources import DEFAULT_MODEL, find_resource
from edge_trt_ros.ros.conversion import detections_msg, label_info_msg, view_of
from edge_trt_ros.ros.diagnostics import power_status, thermal_status
from edge_trt_ros.ros.log_bridge import bridge_core_logs, unbridge
from edge_trt_ros.ros.parameters import check_choices, declare_all
from edge_trt_ros.runtime.stats import FrameWindow

LOG_THROTTLE_S = 5.0
# What this build can run; the parameter callback refuses anything else with a reason.
AVAILABLE = {"backend": ("onnxruntime", "auto"), "precision": ("fp32",), "fusion_profile": ("max",)}


@dataclass
class Counters:
    received: int = 0
    processed: int = 0
    rejected: int = 0  # frames the node could not interpret (encoding, size, buffer)
    failed: int = 0  # frames the engine failed on
    last_reject_reason: str = ""

    @property
    def dropped(self) -> int:
        return self.rejected + self.failed


class DetectorNode(LifecycleNode):
    def __init__(self, node_name: str = "detector", **kwargs: object) -> None:
        super().__init__(node_name, **kwargs)  # type: ignore[arg-type]
        self._log_bridge = bridge_core_logs(self.get_logger())
        declare_all(self)
        self.detector: Detector | None = None
        self.power: LivePower | None = None
        self.counters = Counters()
        self._window = FrameWindow(self.get_parameter("stats_window_s").value)
        self._subscription: Subscription | None = None
        self._timer: Timer | None = None
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.autostart_failed = False
        if self.get_parameter("autostart").value:
            configured = self.trigger_configure() == TransitionCallbackReturn.SUCCESS
            activated = configured and self.trigger_activate() == TransitionCallbackReturn.SUCCESS
            self.autostart_failed = not activated

    # -- lifecycle ------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        p = {name: self.get_parameter(name).value for name in AVAILABLE}
        for name, allowed in AVAILABLE.items():
            if p[name] not in allowed:
                self.get_logger().error(
                    f"{name}={p[name]!r} is not available in this build (available: "
                    f"{', '.join(allowed)}); set it in the params file and configure again"
                )
                return TransitionCallbackReturn.FAILURE
        model_path = self.get_parameter("model_path").value or str(find_resource(DEFAULT_MODEL))
        names = [n for n in self.get_parameter("class_names").value if n] or None
        t0 = time.perf_counter()
        try:
            self.detector = Detector.from_model(
                model_path,
                confidence_threshold=self.get_parameter("confidence_threshold").value,
                nms_iou_threshold=self.get_parameter("nms_iou_threshold").value,
                max_detections=self.get_parameter("max_detections").value,
                class_names=names,
                output_layout=self.get_parameter("output_layout").value,
                intra_op_threads=self.get_parameter("intra_op_threads").value,
            )
        except (FileNotFoundError, ModelLayoutError, EngineError) as exc:
            self.get_logger().error(f"cannot load the detector model: {exc}")
            return TransitionCallbackReturn.FAILURE
        try:
            self.power = LivePower(
                self.get_parameter("hardware_profile").value,
                macs=count_macs(model_path),
                window_s=self.get_parameter("stats_window_s").value,
            )
        except (ValueError, FileNotFoundError) as exc:
            self.get_logger().error(f"cannot set up power telemetry: {exc}")
            self._release()
            return TransitionCallbackReturn.FAILURE
        power = self.power
        self.get_logger().info(
            f"hardware profile {power.profile_name}; power from {power.sensor.source}"
            + (" [ESTIMATED: no power sensor found]" if power.sensor.estimated else "")
        )
        info = self.detector.info
        self.get_logger().info(
            f"loaded {model_path} in {(time.perf_counter() - t0) * 1e3:.0f} ms: "
            f"{info.output_layout} layout, input {info.input_hw[1]}x{info.input_hw[0]}, "
            f"{len(info.class_names)} classes {list(info.class_names)}, "
            f"engine {self.detector.engine.info.engine_id}"
        )
        self._det_pub = self.create_lifecycle_publisher(Detection2DArray, "detections", 10)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._label_pub = self.create_lifecycle_publisher(LabelInfo, "~/label_info", latched)
        self._eff_pub = self.create_lifecycle_publisher(EfficiencyStatus, "~/efficiency", 10)
        self._diag_pub = self.create_lifecycle_publisher(DiagnosticArray, "/diagnostics", 10)
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_activate(state)
        reliability = (
            ReliabilityPolicy.RELIABLE
            if self.get_parameter("input_qos.reliability").value == "reliable"
            else ReliabilityPolicy.BEST_EFFORT
        )
        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=self.get_parameter("input_qos.depth").value,
            reliability=reliability,
            durability=DurabilityPolicy.VOLATILE,
        )
        subscription = self.create_subscription(Image, "image", self._on_image, qos)
        self._subscription = subscription
        assert self.detector is not None
        self._label_pub.publish(
            label_info_msg(
                self.detector.class_names,
                self.detector.params.confidence_threshold,
                Header(stamp=self.get_clock().now().to_msg()),
            )
        )
        if self.power is not None:
            self.power.start()
        self._timer = self.create_timer(
            self.get_parameter("diagnostics_period_s").value, self._publish_status
        )
        self.get_logger().info(
            f"active: subscribed to {subscription.topic_name} "
            f"({reliability.name.lower()}, depth {qos.depth}), publishing "
            f"{self._det_pub.topic_name}"
        )
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_io()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_io()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _stop_io(self) -> None:
        if self.power is not None:
            self.power.stop()
        if self._subscription is not None:
            self.destroy_subscription(self._subscription)
            self._subscription = None
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None

    def _release(self) -> None:
        if self.detector is not None:
            self.detector.release()
            self.detector = None
        if self.power is not None:
            self.power.close()
            self.power = None
        for name in ("_det_pub", "_label_pub", "_eff_pub", "_diag_pub"):
            pub = self.__dict__.pop(name, None)
            if pub is not None:
                self.destroy_lifecycle_publisher(pub)

    # -- hot path -------------------------------------------------------------------------------
    def _on_image(self, msg: Image) -> None:
        self.counters.received += 1
        detector = self.detector
        if detector is None:
            return
        try:
            view = view_of(msg)
        except ImageFormatError as exc:
            self.counters.rejected += 1
            self.counters.last_reject_reason = str(exc)
            self.get_logger().warning(
                f"dropping frame from '{msg.header.frame_id}': {exc} "
                f"({self.counters.rejected} dropped so far)",
                throttle_duration_sec=LOG_THROTTLE_S,
            )
            return
        try:
            found = detector.detect(view)
        except Exception as exc:  # an engine fault must not take the robot's detector down
            self.counters.failed += 1
            self.get_logger().error(
                f"inference failed on a {msg.width}x{msg.height} {msg.encoding} frame: {exc}",
                throttle_duration_sec=LOG_THROTTLE_S,
            )
            return
        self._det_pub.publish(detections_msg(found, msg.header, detector.info.class_names))
        self.counters.processed += 1
        if self.power is not None:
            self.power.add_frame()
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        e2e_ms = (
            (self.get_clock().now().nanoseconds - stamp_ns) / 1e6 if stamp_ns else float("nan")
        )
        self._window.add(detector.last_timing.inference_ms, e2e_ms)

    # -- status ---------------------------------------------------------------------------------
    def _publish_status(self) -> None:
        detector, power = self.detector, self.power
        if detector is None or power is None:  # both exist from configure to cleanup
            return
        s = self._window.stats()
        engine = detector.engine.info
        c = self.counters
        nan = float("nan")
        figures = power.figures()
        e = figures.efficiency

        def num(value: float | None) -> float:
            return nan if value is None else float(value)

        status = EfficiencyStatus(
            header=Header(stamp=self.get_clock().now().to_msg()),
            backend=engine.backend,
            precision=engine.precision,
            fusion_profile=engine.fusion_profile,
            engine_id=engine.engine_id,
            window_s=float(s.window_s),
            fps=float(s.fps),
            inference_latency_p50_ms=s.inference_p50_ms,
            inference_latency_p95_ms=s.inference_p95_ms,
            inference_latency_p99_ms=s.inference_p99_ms,
            end_to_end_latency_p50_ms=s.end_to_end_p50_ms,
            end_to_end_latency_p95_ms=s.end_to_end_p95_ms,
            frames_received=c.received,
            frames_processed=c.processed,
            frames_dropped=c.dropped,
            power_w=num(e.mean_watts),
            power_scope=e.scope,
            power_source=figures.sensor,
            power_estimated=e.estimated,
            energy_per_frame_mj=num(e.energy_per_frame_mj),
            fps_per_watt=num(e.fps_per_watt),
            effective_tops_per_watt=num(e.effective_tops_per_watt),
            temperature_c=num(figures.thermal.max_celsius),
            map50=nan, map50_drop_vs_fp32=nan,
            adaptive_mode="off", last_decision="",
        )
        self._eff_pub.publish(status)
        diagnostics = self._diagnostics(s.fps, s.frames)
        name = self.get_fully_qualified_name()
        diagnostics.status += [
            power_status(name, figures, power.why_not_measured()),
            thermal_status(name, figures),
        ]
        self._diag_pub.publish(diagnostics)

    def _diagnostics(self, fps: float, frames: int) -> DiagnosticArray:
        c = self.counters
        name = self.get_fully_qualified_name()
        engine = self.detector.engine.info if self.detector else None
        inference = DiagnosticStatus(
            name=f"{name}: inference", hardware_id=engine.device if engine else ""
        )
        if c.failed:
            inference.level = DiagnosticStatus.ERROR
            inference.message = f"{c.failed} frames failed in the engine"
        elif frames:
            inference.level, inference.message = DiagnosticStatus.OK, f"{fps:.1f} fps"
        else:
            inference.level, inference.message = DiagnosticStatus.WARN, "no frames in the window"
        inference.values = [
            KeyValue(key="backend", value=engine.backend if engine else ""),
            KeyValue(key="precision", value=engine.precision if engine else ""),
            KeyValue(key="engine_id", value=engine.engine_id if engine else ""),
            KeyValue(key="frames_processed", value=str(c.processed)),
        ]
        stream = DiagnosticStatus(name=f"{name}: input stream")
        if c.rejected:
            stream.level = DiagnosticStatus.WARN
            stream.message = f"{c.rejected} frames dropped: {c.last_reject_reason}"
        elif c.received:
            stream.level, stream.message = DiagnosticStatus.OK, f"{c.received} frames received"
        else:
            stream.level, stream.message = DiagnosticStatus.WARN, "no images received yet"
        stream.values = [
            KeyValue(key="frames_received", value=str(c.received)),
            KeyValue(key="frames_rejected", value=str(c.rejected)),
        ]
        return DiagnosticArray(
            header=Header(stamp=self.get_clock().now().to_msg()), status=[inference, stream]
        )

    # -- parameters -----------------------------------------------------------------------------
    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        result = check_choices(params)
        if not result.successful:
            return result
        for p in params:
            allowed = AVAILABLE.get(p.name)
            if allowed and p.value not in allowed and self.detector is not None:
                return SetParametersResult(
                    successful=False,
                    reason=f"{p.name}={p.value!r} is not available in this build "
                    f"(available: {', '.join(allowed)})",
                )
        if self.detector is not None:
            updates = {
                p.name: p.value
                for p in params
                if p.name in ("confidence_threshold", "nms_iou_threshold", "max_detections")
            }
            if updates:
                self.detector.update(**updates)
        return result


    def destroy_node(self) -> None:
        unbridge(self._log_bridge)
        super().destroy_node()


def main(argv: list[str] | None = None) -> None:
    rclpy.init(args=argv if argv is not None else sys.argv)
    node = DetectorNode()
    if node.autostart_failed:
        node.get_logger().fatal("autostart failed (see the error above); exiting")
        node.destroy_node()
        rclpy.try_shutdown()
        sys.exit(1)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
