"""A synthetic AGV camera: rendered factory surfaces with defects under varying light.

Frames are rendered once at start (a loop of ``loop_frames``) and then published at
``rate_hz`` with fresh stamps, so the camera itself never limits the frame rate it claims.
Each frame's illuminance goes out on ``illuminance`` for the adaptive controller.
"""

from __future__ import annotations

import sys

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Illuminance, Image
from std_msgs.msg import Header

from edge_trt_ros.dataset import render_sample

ENCODINGS = ("rgb8", "bgr8", "mono8")


class SyntheticCamera(Node):
    def __init__(self) -> None:
        super().__init__("synthetic_camera")
        self.declare_parameter("rate_hz", 30.0)
        self.declare_parameter("width", 640)
        self.declare_parameter("height", 480)
        self.declare_parameter("encoding", "rgb8")
        self.declare_parameter("frame_id", "camera_optical_frame")
        self.declare_parameter("loop_frames", 60)
        self.declare_parameter("seed", 1_000_000)
        self.declare_parameter("max_frames", 0)  # 0 = publish until stopped
        encoding = self.get_parameter("encoding").value
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding {encoding!r} is not one of {ENCODINGS}")
        w, h = self.get_parameter("width").value, self.get_parameter("height").value
        seed0 = self.get_parameter("seed").value
        self._frame_id = self.get_parameter("frame_id").value
        self._max = self.get_parameter("max_frames").value
        self._frames = [
            self._to_msg(render_sample(seed0 + i, width=w, height=h), encoding)
            for i in range(self.get_parameter("loop_frames").value)
        ]
        self._image_pub = self.create_publisher(Image, "image", qos_profile_sensor_data)
        self._lux_pub = self.create_publisher(Illuminance, "illuminance", qos_profile_sensor_data)
        self.published = 0
        self._timer = self.create_timer(1.0 / self.get_parameter("rate_hz").value, self._tick)
        self.get_logger().info(
            f"publishing {w}x{h} {encoding} at {self.get_parameter('rate_hz').value:g} Hz on "
            f"{self._image_pub.topic_name} ({len(self._frames)} rendered frames, looped)"
        )

    def _to_msg(self, sample: object, encoding: str) -> tuple[Image, float]:
        rgb: np.ndarray = sample.image  # type: ignore[attr-defined]
        if encoding == "bgr8":
            pixels = np.ascontiguousarray(rgb[:, :, ::-1])
        elif encoding == "mono8":
            pixels = np.ascontiguousarray(
                (rgb @ np.array([0.299, 0.587, 0.114])).clip(0, 255).astype(np.uint8)
            )
        else:
            pixels = rgb
        channels = 1 if pixels.ndim == 2 else pixels.shape[2]
        msg = Image(
            height=pixels.shape[0], width=pixels.shape[1], encoding=encoding,
            is_bigendian=0, step=pixels.shape[1] * channels,
        )
        msg.data = pixels.tobytes()
        return msg, float(sample.lux)  # type: ignore[attr-defined]

    def _tick(self) -> None:
        if self._max and self.published >= self._max:
            self._timer.cancel()
            return
        msg, lux = self._frames[self.published % len(self._frames)]
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self._frame_id)
        msg.header = header
        self._image_pub.publish(msg)
        self._lux_pub.publish(Illuminance(header=header, illuminance=lux, variance=0.0))
        self.published += 1


def main(argv: list[str] | None = None) -> None:
    rclpy.init(args=argv if argv is not None else sys.argv)
    node = SyntheticCamera()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
