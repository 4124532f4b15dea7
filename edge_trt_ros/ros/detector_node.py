"""The detector as a managed (lifecycle) node: wiring only.

configure builds the ROS-free :class:`~edge_trt_ros.runtime.detector_runtime.DetectorRuntime`
(variant catalog, engine, workers), activate subscribes and publishes, deactivate stops the
workers, cleanup releases the engine. ``autostart`` (default true) runs configure and
activate at start so a plain ``ros2 run``/launch works without a lifecycle manager.

Threads: the camera subscriptions are received on a thread of their own
(:mod:`~edge_trt_ros.ros.intake`: a helper node ``<name>_intake``), whose callback hands
each frame to the worker threads; one single-threaded executor runs every other callback
(services, parameters, timers, events), and none of them waits: an engine switch runs on
the runtime's switch thread, the ``~/switch_engine`` service awaiting it as a coroutine and
a parameter change returning once the request is validated. So frames keep arriving while
an engine is prepared. (rclpy's multi-threaded executor was measured here spending most of
the node's interpreter time re-queueing pending callbacks.)
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import threading
import time
from concurrent.futures import Future as ConcurrentFuture
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.task import Future
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from vision_msgs.msg import LabelInfo

from edge_trt_ros.choices import AUTO, FUSION_PROFILES
from edge_trt_ros.engines.spec import parse_device
from edge_trt_ros.errors import EdgeTrtError, ParameterError
from edge_trt_ros.macs import count_macs
from edge_trt_ros.msg import EfficiencyStatus
from edge_trt_ros.power.live import LivePower
from edge_trt_ros.resources import DEFAULT_MODEL, find_resource
from edge_trt_ros.ros.adaptive_wiring import AdaptiveWiring
from edge_trt_ros.ros.cameras import CameraWiring
from edge_trt_ros.ros.conversion import (
    SUBSCRIPTION_MESSAGE_INFO,
    efficiency_msg,
    health_status,
    label_info_msg,
    printable,
    publication_sequence,
    publisher_key,
    variant_info_msg,
)
from edge_trt_ros.ros.diagnostics import power_status, thermal_status
from edge_trt_ros.ros.log_bridge import bridge_core_logs, unbridge
from edge_trt_ros.ros.parameters import (
    SPECS,
    check_static,
    choice_refusal,
    declare_all,
    refuse,
)
from edge_trt_ros.ros.processes import StopSignals
from edge_trt_ros.runtime.counters import (
    LOST_PER_PUBLISHER,
    LOST_SEVERAL_PUBLISHERS,
    LOST_UNSUPPORTED_RCLPY,
    LOST_UNSUPPORTED_RMW,
    SequenceGaps,
)
from edge_trt_ros.runtime.detector_runtime import (
    DetectorRuntime,
    RuntimeConfig,
    SwitchOutcome,
    plan_for,
)
from edge_trt_ros.runtime.health import engine_health, guard_health, inference_health, input_health
from edge_trt_ros.runtime.selection import SwitchRefused
from edge_trt_ros.runtime.stream_health import delivery_health
from edge_trt_ros.runtime.workers import FrameResult
from edge_trt_ros.srv import GetEngineInfo, SwitchEngine
from edge_trt_ros.vision.decode import DecodeParams

IDLE_STATUS_PERIOD_S = 5.0  # ~/efficiency and /diagnostics while not active or idle (lazy)
DECODE_PARAMS = ("confidence_threshold", "nms_iou_threshold", "max_detections")


class DetectorNode(LifecycleNode):
    def __init__(self, node_name: str = "detector", **kwargs: object) -> None:
        super().__init__(node_name, **kwargs)  # type: ignore[arg-type]
        self._log_bridge = bridge_core_logs(self.get_logger())
        declare_all(self)
        self.state = "unconfigured"
        self.runtime: DetectorRuntime | None = None
        self.power: LivePower | None = None
        self.shutdown_requested: Future = Future()
        self._local = threading.local()  # marks parameter writes the node makes itself
        self._sync_lock = threading.Lock()  # the executor and the switch thread both sync
        self._gaps = SequenceGaps()  # frames lost before the image callback, per publisher
        # per camera: at most one publisher on its topic (anonymous sequence numbers are one
        # stream then); set at activation, refreshed with the status
        self._single_publisher: dict[str, bool] = {}
        self._last_idle_status = -math.inf
        # Status outlives the active state: it says "inactive" instead of going silent.
        self._eff_pub = self.create_publisher(EfficiencyStatus, "~/efficiency", 10)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(self.get_parameter("diagnostics_period_s").value,
                          self._publish_status)
        # Its own callback group: while its coroutine awaits a switch, the group counts as
        # busy, and sharing the default group would hold every other callback back meanwhile.
        self.create_service(SwitchEngine, "~/switch_engine", self._on_switch_engine,
                            callback_group=MutuallyExclusiveCallbackGroup())
        self.create_service(GetEngineInfo, "~/get_engine_info", self._on_get_engine_info)
        self.adaptive = AdaptiveWiring(self)
        # image_topics: subscriptions, outputs, lazy demand; frames flowing again after idle
        # make a sequence-number jump that is not a loss
        self.cameras = CameraWiring(self, on_resume=self._resumed)
        self.add_on_set_parameters_callback(self._on_set_parameters_logged)
        self.autostart_failed = False
        if self.get_parameter("autostart").value:
            configured = self.trigger_configure() == TransitionCallbackReturn.SUCCESS
            activated = configured and self.trigger_activate() == TransitionCallbackReturn.SUCCESS
            self.autostart_failed = not activated

    def param(self, name: str) -> Any:
        return self.get_parameter(name).value

    # -- lifecycle ------------------------------------------------------------------------------
    def _config(self, overrides: dict[str, Any] | None = None) -> RuntimeConfig:
        """The runtime configuration from the parameters (plus not-yet-set ``overrides``)."""
        p = {name: self.param(name) for name in SPECS} | (overrides or {})
        shipped = str(find_resource(DEFAULT_MODEL))
        return RuntimeConfig(
            model_path=p["model_path"] or shipped, backend=p["backend"], device=p["device"],
            precision=p["precision"], fusion_profile=p["fusion_profile"],
            intra_op_threads=p["intra_op_threads"], workers=p["workers"],
            pin_workers=p["pin_workers"],
            engine_cache_dir=p["engine_cache_dir"], variants_dir=p["variants_dir"],
            shipped_model=shipped, class_names=tuple(n for n in p["class_names"] if n),
            output_layout=p["output_layout"],
            decode=DecodeParams(p["confidence_threshold"], p["nms_iou_threshold"],
                                p["max_detections"]),
            max_accuracy_drop=p["max_accuracy_drop"],
            hardware_fusion_default=self._hardware_fusion_default(),
            stats_window_s=p["stats_window_s"],
            max_batch=len(self.cameras.plans) if p["batching"] else 1,
            keep_ready=tuple(p["keep_ready"]))

    def _hardware_fusion_default(self) -> str:
        return self.power.detection.profile.default_fusion_profile if self.power else "max"

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        logger = self.get_logger()
        try:
            self.power = LivePower(self.param("hardware_profile"),
                                   window_s=self.param("stats_window_s"))
        except (ValueError, FileNotFoundError) as exc:
            logger.error(f"cannot set up power telemetry: {exc}")
            return TransitionCallbackReturn.FAILURE
        why = self.cameras.check()  # before the engine loads: a bad camera list fails fast
        if why is not None:
            logger.error(f"cannot configure the cameras: {why}")
            self._release()
            return TransitionCallbackReturn.FAILURE
        try:
            self.runtime = DetectorRuntime(self._config(), self.cameras.convert, self._emit,
                                           lambda: self.get_clock().now().nanoseconds)
        except (EdgeTrtError, OSError) as exc:
            logger.error(f"cannot load the detector: {exc}")
            self._release()
            return TransitionCallbackReturn.FAILURE
        active = self.runtime.active
        try:
            self.power.meter.macs = count_macs(self.runtime.config.model_path)
        except Exception as exc:  # only TOPS/W is lost; never fail configure over it
            logger.warning(f"cannot count the model's MACs ({exc}): effective TOPS/W will be "
                           "NaN; fps, watts and mJ/frame are unaffected")
        power = self.power
        logger.info(
            f"hardware profile {power.profile_name}; power from {power.sensor.source}"
            + (" [ESTIMATED: no power sensor found]" if power.sensor.estimated else ""))
        info = active.first.info
        logger.info(
            f"model {self.runtime.config.model_path}: {info.output_layout} layout, input "
            f"{info.input_hw[1]}x{info.input_hw[0]}, {len(info.class_names)} classes "
            f"{list(info.class_names)}; variants in {self.runtime.catalog.directory}: "
            + ", ".join(self.runtime.catalog.variants))
        try:
            self.adaptive.configure(self.runtime, power)
        except OSError as exc:
            logger.error(f"cannot open the adaptive controller's audit log (mandatory while "
                         f"adaptive.enabled): {exc}; set adaptive.audit_log_path")
            self._release()
            return TransitionCallbackReturn.FAILURE
        self.sync_parameters(active.spec.precision, active.spec.fusion_profile)
        self.cameras.configure(self.runtime)  # per camera: detections + debug image
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._label_pub = self.create_lifecycle_publisher(LabelInfo, "~/label_info", latched)
        self.state = "inactive"
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_activate(state)
        assert self.runtime is not None and self.power is not None
        reliability = (ReliabilityPolicy.RELIABLE
                       if self.param("input_qos.reliability") == "reliable"
                       else ReliabilityPolicy.BEST_EFFORT)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=self.param("input_qos.depth"),
                         reliability=reliability, durability=DurabilityPolicy.VOLATILE)
        self.runtime.start()
        self.power.start()
        self._gaps.forget()
        self.runtime.counters.lost_tracking = ("" if SUBSCRIPTION_MESSAGE_INFO
                                               else LOST_UNSUPPORTED_RCLPY)
        self.cameras.activate(
            qos, self._on_image_with_info if SUBSCRIPTION_MESSAGE_INFO else self._on_image,
            with_info=SUBSCRIPTION_MESSAGE_INFO)
        self._single_publisher = self.cameras.single_publishers()
        self._publish_label_info()
        self.state = "active"
        self.get_logger().info(
            f"active: subscribed to {self.cameras.describe()} "
            f"({reliability.name.lower()}, depth {qos.depth})")
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_io()
        self.state = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_io()
        self._release()
        self.state = "finalized"
        self.shutdown_requested.set_result(True)  # main() exits: finalized is the end
        return TransitionCallbackReturn.SUCCESS

    def _stop_io(self) -> None:
        self.cameras.deactivate()
        if self.runtime is not None:
            self.runtime.stop()  # frames in flight finish and publish first
        if self.power is not None:
            self.power.stop()

    def _release(self) -> None:
        self.adaptive.release()
        if self.runtime is not None:
            self.runtime.close()
            self.runtime = None
        if self.power is not None:
            self.power.close()
            self.power = None
        self.cameras.release()
        for name in ("_label_pub",):
            pub = self.__dict__.pop(name, None)
            if pub is not None:
                self.destroy_lifecycle_publisher(pub)

    # -- frames ---------------------------------------------------------------------------------
    def _on_image(self, msg: Image | CompressedImage, source: str) -> None:
        """``source``: the camera (its image_topics entry, from the camera wiring)."""
        runtime = self.runtime
        if runtime is not None:
            stamp = msg.header.stamp
            runtime.frame(msg, stamp.sec * 1_000_000_000 + stamp.nanosec, source)

    def _on_image_with_info(self, msg: Image | CompressedImage, info: Any,
                            source: str) -> None:
        """rclpy >= Iron: count the frames this publisher sent that never arrived."""
        runtime = self.runtime
        if runtime is not None:
            publisher = publisher_key(info)
            missing = self._gaps.observe(publisher, publication_sequence(info),
                                         self._single_publisher.get(source, False), source)
            counters = runtime.counters
            if missing is None:
                counters.lost_tracking = (LOST_SEVERAL_PUBLISHERS if publisher is None
                                          and publication_sequence(info) else
                                          LOST_UNSUPPORTED_RMW)
            else:
                counters.lost_tracking = LOST_PER_PUBLISHER
                if missing:
                    counters.lost(missing, f"{missing} frames missing before one from "
                                  f"{printable(msg.header.frame_id)}")
        self._on_image(msg, source)

    def _emit(self, result: FrameResult) -> None:
        """On a worker thread, in its camera's arrival order: publish the frame's detections
        (and hand the debug image over when someone watches it)."""
        self.cameras.publish(result)
        if self.power is not None:
            self.power.add_frame()

    def _publish_label_info(self) -> None:
        runtime = self.runtime
        if runtime is None or "_label_pub" not in self.__dict__:
            return
        self._label_pub.publish(label_info_msg(
            runtime.active.first.class_names, runtime.switcher.decode.confidence_threshold,
            Header(stamp=self.get_clock().now().to_msg())))

    # -- status ---------------------------------------------------------------------------------
    def _resumed(self) -> None:
        """Frames flow again after an idle spell: full-rate power samples again, and a
        sequence-number jump that is not a loss."""
        self._gaps.forget()
        if self.power is not None:
            self.power.set_idle(False)

    def _publish_status(self) -> None:
        now = time.monotonic()
        if self.power is not None:
            self.power.set_idle(self.state == "active" and self.cameras.idle())
        if self.state != "active" or self.cameras.idle():  # idle: nobody subscribed (lazy)
            if now - self._last_idle_status < IDLE_STATUS_PERIOD_S:
                return
            self._last_idle_status = now
        runtime, power = self.runtime, self.power
        header = Header(stamp=self.get_clock().now().to_msg())
        name = self.get_fully_qualified_name()
        if runtime is None:
            statuses = [engine_health(None), guard_health(None)]
            self._eff_pub.publish(EfficiencyStatus(header=header, state=self.state))
            self._diag_pub.publish(DiagnosticArray(
                header=header, status=[health_status(name, h) for h in statuses]))
            return
        stats, counters = runtime.window.stats(), runtime.counters.snapshot()
        figures = power.figures() if power is not None else None
        efficiency = efficiency_msg(header, self.state, runtime, stats, counters, figures,
                                    self.adaptive.mode(), self.adaptive.last_decision())
        self.cameras.annotate(efficiency)  # lazy: activity, idle skips
        self._eff_pub.publish(efficiency)
        device = runtime.base.device
        self._single_publisher = self.cameras.single_publishers()
        statuses = [inference_health(self.state, stats, counters, device,
                                     idle=self.cameras.idle()),
                    engine_health(runtime), guard_health(runtime, self.adaptive.guard_bins()),
                    input_health(self.state, counters),
                    delivery_health(self.state, stats, counters), self.adaptive.health(),
                    *self.cameras.statuses(self.state)]
        diagnostics = [health_status(name, h) for h in statuses]
        if power is not None and figures is not None:
            diagnostics += [power_status(name, figures, power.why_not_measured()),
                            thermal_status(name, figures)]
        self._diag_pub.publish(DiagnosticArray(header=header, status=diagnostics))

    # -- control --------------------------------------------------------------------------------
    def sync_parameters(self, precision: str, fusion_profile: str) -> None:
        """Make the precision/fusion_profile parameters show what actually runs: what runs
        when the parameters are written (under a lock), not the caller's switch, which a
        later one may have replaced already; every switch is followed by a sync, so the last
        sync shows the last switch. ``fusion_profile`` auto stays auto."""
        with self._sync_lock:
            runtime = self.runtime
            if runtime is not None:
                with contextlib.suppress(EdgeTrtError):  # no engine: keep the caller's
                    spec = runtime.active.spec
                    precision = spec.precision
                    fusion_profile = fusion_profile if fusion_profile == AUTO \
                        else spec.fusion_profile
            self._local.syncing = True
            try:
                self.set_parameters([Parameter("precision", value=precision),
                                     Parameter("fusion_profile", value=fusion_profile)])
            finally:
                self._local.syncing = False

    async def _on_switch_engine(self, request: SwitchEngine.Request,
                                response: SwitchEngine.Response) -> SwitchEngine.Response:
        """Answered when the switch is done or refused; frames and other callbacks are served
        meanwhile."""
        runtime = self.runtime
        if runtime is None:
            response.success = False
            response.message = (f"the node is {self.state}: configure it first "
                                "(ros2 lifecycle set <node> configure)")
            return response
        bad = next((why for name, value in (("precision", request.precision),
                                            ("fusion_profile", request.fusion_profile))
                    if value and (why := choice_refusal(name, value))), None)
        if bad:
            response.success, response.message = False, bad
            self.get_logger().warning(f"switch refused (~/switch_engine): {printable(bad, 400)}")
            response.active_precision = runtime.active.spec.precision
            response.active_fusion_profile = runtime.active.spec.fusion_profile
            return response
        outcome = await self._wait(runtime.submit(request.precision, request.fusion_profile,
                                                  force=request.force,
                                                  reason="~/switch_engine"))
        assert outcome is not None  # the switch thread always sets an outcome
        response.success, response.message = outcome.success, outcome.message
        response.active_precision = outcome.precision
        response.active_fusion_profile = outcome.fusion_profile
        response.switch_time_ms = float(outcome.switch_ms)
        active = runtime.active
        self.adaptive.manual(outcome, forced=outcome.success and active.forced,
                             reason="~/switch_engine", requested=request.precision)
        if outcome.success:
            self.sync_parameters(outcome.precision, self._profile_param(outcome))
        return response

    def _wait(self, work: ConcurrentFuture[SwitchOutcome]) -> Future[SwitchOutcome]:
        """An rclpy future (awaitable in a callback) completed by the switch thread, which
        then wakes the executor so the waiting callback resumes even with no frames."""
        executor = self.executor
        done: Future[SwitchOutcome] = Future(executor=executor)

        def finish(f: ConcurrentFuture[SwitchOutcome]) -> None:
            done.set_result(f.result())
            if executor is not None:
                executor.wake()

        work.add_done_callback(finish)
        return done

    def _after_parameter_switch(self, work: ConcurrentFuture[SwitchOutcome]) -> None:
        """Record the parameter-triggered switch and make the parameters show what runs:
        after a failure (the log and /diagnostics say why), and after a success too, since
        a switch answered meanwhile may have written its own target over this one."""
        outcome = work.result()
        self.adaptive.manual(outcome, forced=False, reason="parameter",
                             requested=outcome.precision)
        self.sync_parameters(outcome.precision, self._profile_param(outcome))

    def _profile_param(self, outcome: Any) -> str:
        """Keep ``auto`` in the parameter when the operator asked for it."""
        return AUTO if self.param("fusion_profile") == AUTO else outcome.fusion_profile

    def _on_get_engine_info(self, request: GetEngineInfo.Request,
                            response: GetEngineInfo.Response) -> GetEngineInfo.Response:
        response.lifecycle_state = self.state
        response.fusion_profiles = [*FUSION_PROFILES, AUTO]
        response.max_accuracy_drop = float(self.param("max_accuracy_drop"))
        runtime = self.runtime
        config = runtime.config if runtime else self._config()
        response.model_path = config.model_path
        response.engine_cache_dir = str(config.cache_dir())
        response.variants_dir = str(config.catalog_dir())
        if runtime is None:
            return response
        from edge_trt_ros.engines.registry import capabilities

        active = runtime.active
        info = active.first.engine.info
        response.backend, response.backend_version = info.backend, info.backend_version
        response.backend_reason = runtime.backend_reason
        response.device = runtime.base.device
        response.active_variant = active.variant.name
        response.precision, response.fusion_profile = info.precision, info.fusion_profile
        response.engine_id, response.forced = info.engine_id, active.forced
        response.workers = len(active.detectors)
        response.kept_ready = runtime.ready_labels()
        response.variants = [variant_info_msg(v, runtime.max_accuracy_drop)
                             for v in runtime.describe_variants()]
        response.capabilities_json = json.dumps(capabilities().summary())
        return response

    def _on_set_parameters_logged(self, params: list[Parameter]) -> SetParametersResult:
        """Every refused change is logged (an accepted switch is logged when it happens)."""
        result = self._on_set_parameters(params)
        if not result.successful:
            names = ", ".join(p.name for p in params)
            self.get_logger().warning(f"parameter change refused ({printable(names)}): "
                                      f"{printable(result.reason, 400)}")
        return result

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        configured = self.runtime is not None
        result = check_static(params, configured)
        if not result.successful:
            return result
        values = {p.name: p.value for p in params}
        device = values.get("device")
        if device is not None and device != AUTO:
            try:
                parse_device(device)
            except EdgeTrtError as exc:
                return refuse(f"device={device!r}: {exc}")
        if getattr(self._local, "syncing", False):
            return result
        runtime = self.runtime
        if runtime is None:  # validate against the catalog and this machine now, not later
            if {"precision", "fusion_profile", "model_path", "backend", "device",
                    "variants_dir", "max_accuracy_drop"} & values.keys():
                config = self._config({k: v for k, v in values.items()
                                       if SPECS.get(k) is not None})
                try:
                    plan_for(config, config.precision, config.fusion_profile)
                except SwitchRefused as exc:
                    return refuse(str(exc))
            return result
        switching = "precision" in values or "fusion_profile" in values
        precision, profile = values.get("precision", ""), values.get("fusion_profile", "")
        why = self.adaptive.validate(values) or (
            runtime.validate(precision, profile) if switching else None)
        if why is not None:
            return refuse(why)
        why = self.adaptive.apply(values)
        if why is not None:
            return refuse(why)
        if "max_accuracy_drop" in values:
            runtime.max_accuracy_drop = float(values["max_accuracy_drop"])
        if switching:
            runtime.submit(precision, profile, reason="parameter").add_done_callback(
                self._after_parameter_switch)
        decode = {k: v for k, v in values.items() if k in DECODE_PARAMS}
        if decode:
            runtime.update_decode(**decode)
            if "confidence_threshold" in decode:
                self._publish_label_info()
        return result

    def destroy_node(self) -> None:
        self._stop_io()
        self._release()
        unbridge(self._log_bridge)
        super().destroy_node()


def main(argv: list[str] | None = None) -> None:
    """Run until shutdown. Exit status: 0 after SIGINT/SIGTERM (at any moment, no traceback)
    or the lifecycle shutdown transition; 2 when a start-up parameter is unusable; 1 when
    autostart fails. A launch file or supervisor can tell the three apart."""
    stop = StopSignals().install()  # before rclpy.init, which chains its handler to it
    rclpy.init(args=argv if argv is not None else sys.argv)

    def stopping() -> bool:
        """A stop signal came: rclpy's handler may have shut the context down (failing what
        was running: "context is not valid") before ours set the flag."""
        return stop.requested.is_set() or not rclpy.ok()

    try:
        node = DetectorNode()
    except ParameterError as exc:
        # No rclpy.try_shutdown(): it would destroy the half-constructed node.
        rclpy.logging.get_logger("detector").fatal(str(exc))
        sys.exit(2)
    except Exception:
        if stopping():  # while the node was being made: the stop, not a failure
            rclpy.try_shutdown()
            sys.exit(0)
        raise
    if node.autostart_failed and stopping():  # during autostart: the stop, not a failure
        try:
            node.destroy_node()
        except Exception as exc:
            rclpy.logging.get_logger("detector").warning(f"while stopping: {exc}")
        rclpy.try_shutdown()
        sys.exit(0)
    if node.autostart_failed:
        node.get_logger().fatal("autostart failed (see the error above); exiting")
        node.destroy_node()
        rclpy.try_shutdown()
        sys.exit(1)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    stop.running()
    try:
        executor.spin_until_future_complete(node.shutdown_requested)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        # A callback that was publishing when a signal shut the context down: the stop.
        if not stopping():
            raise
    finally:
        executor.shutdown()
        try:
            node.destroy_node()
        except Exception as exc:
            if not stop.requested.is_set():
                raise
            rclpy.logging.get_logger("detector").warning(f"while stopping: {exc}")
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
