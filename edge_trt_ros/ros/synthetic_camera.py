"""A synthetic AGV camera: rendered factory surfaces with defects under varying light.

Frames are rendered once at start (a loop of ``loop_frames``) and then published at
``rate_hz`` with fresh stamps, so the camera itself never limits the frame rate it claims.
Each frame's illuminance goes out on ``illuminance`` for the adaptive controller.

Several cameras: run one instance per camera with its own node name, topic and scene::

    synthetic_camera --ros-args -r __node:=front_cam -r image:=/front/image_raw -p scene:=front
    synthetic_camera --ros-args -r __node:=rear_cam -r image:=/rear/image_raw -p scene:=rear \
        -p transport:=compressed

``scene`` picks the rendered frames (a name; empty = ``seed`` as given), ``transport`` what
goes out: ``raw`` (``sensor_msgs/Image`` on ``image``), ``compressed``
(``sensor_msgs/CompressedImage`` on ``image/compressed``, as image_transport's compressed
plugin names it; ``compressed_format`` jpeg or png, encoded once at start) or ``both``.
"""

from __future__ import annotations

import sys
import zlib

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Illuminance, Image
from std_msgs.msg import Header

from edge_trt_ros.dataset import render_sample
from edge_trt_ros.vision.compressed import FORMATS, encode_compressed

ENCODINGS = ("rgb8", "bgr8", "mono8")
TRANSPORTS = ("raw", "compressed", "both")


def scene_seed(scene: str, seed: int) -> int:
    """The first seed of a named scene (stable across runs and machines); '' keeps ``seed``."""
    return seed if not scene else seed + 1000 * (zlib.crc32(scene.encode()) % 1_000_000)


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
        self.declare_parameter("scene", "")  # a name: its own frames (several cameras)
        self.declare_parameter("transport", "raw")  # raw | compressed | both
        self.declare_parameter("compressed_format", "jpeg")  # jpeg | png
        self.declare_parameter("jpeg_quality", 90)
        encoding = self.get_parameter("encoding").value
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding {encoding!r} is not one of {ENCODINGS}")
        transport = self.get_parameter("transport").value
        kind = self.get_parameter("compressed_format").value
        if transport not in TRANSPORTS or kind not in FORMATS:
            raise ValueError(f"transport {transport!r} / compressed_format {kind!r}: use one "
                             f"of {TRANSPORTS} / {FORMATS}")
        w, h = self.get_parameter("width").value, self.get_parameter("height").value
        seed0 = scene_seed(self.get_parameter("scene").value, self.get_parameter("seed").value)
        self._frame_id = self.get_parameter("frame_id").value
        self._max = self.get_parameter("max_frames").value
        samples = [render_sample(seed0 + i, width=w, height=h)
                   for i in range(self.get_parameter("loop_frames").value)]
        self._frames = [self._to_msg(sample, encoding) for sample in samples]
        quality = self.get_parameter("jpeg_quality").value
        self._compressed = [
            CompressedImage(format=f"{encoding}; {kind} compressed bgr8",
                            data=encode_compressed(np.ascontiguousarray(
                                sample.image[:, :, ::-1]), kind, quality))
            for sample in samples] if transport != "raw" else []
        self._raw = transport != "compressed"
        # The raw publisher exists either way: its (remapped) name is the compressed topic's base.
        self._image_pub = self.create_publisher(Image, "image", qos_profile_sensor_data)
        self._compressed_pub = self.create_publisher(
            CompressedImage, self._image_pub.topic_name + "/compressed",
            qos_profile_sensor_data) if self._compressed else None
        self._lux_pub = self.create_publisher(Illuminance, "illuminance", qos_profile_sensor_data)
        self.published = 0
        self._timer = self.create_timer(1.0 / self.get_parameter("rate_hz").value, self._tick)
        where = [self._image_pub.topic_name] if self._raw else []
        if self._compressed_pub is not None:
            where.append(f"{self._compressed_pub.topic_name} ({kind})")
        self.get_logger().info(
            f"publishing {w}x{h} {encoding} at {self.get_parameter('rate_hz').value:g} Hz on "
            f"{' and '.join(where)} ({len(self._frames)} rendered frames, looped)"
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
        i = self.published % len(self._frames)
        msg, lux = self._frames[i]
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self._frame_id)
        if self._raw:
            msg.header = header
            self._image_pub.publish(msg)
        if self._compressed_pub is not None:
            compressed = self._compressed[i]
            compressed.header = header
            self._compressed_pub.publish(compressed)
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
