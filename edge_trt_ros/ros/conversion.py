"""ROS messages <-> core types. The only module that knows both vision_msgs and numpy."""

from __future__ import annotations

from collections.abc import Sequence

from sensor_msgs.msg import Image
from std_msgs.msg import Header
from vision_msgs.msg import (
    BoundingBox2D,
    Detection2D,
    Detection2DArray,
    LabelInfo,
    ObjectHypothesisWithPose,
    VisionClass,
)

from edge_trt_ros.vision.decode import Detections
from edge_trt_ros.vision.image import ImageView, image_view


def view_of(msg: Image) -> ImageView:
    """Zero-copy view of an Image message; raises ImageFormatError on a frame it can't use."""
    return image_view(msg.data, msg.encoding, msg.height, msg.width, msg.step)


def detections_msg(
    found: Detections, header: Header, class_names: Sequence[str]
) -> Detection2DArray:
    """One Detection2D per box, class name as class_id, bbox centre/size in image pixels."""
    out = Detection2DArray(header=header)
    boxes = found.boxes.tolist()
    scores = found.scores.tolist()
    classes = found.class_ids.tolist()
    for (x1, y1, x2, y2), score, cls in zip(boxes, scores, classes, strict=True):
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id = class_names[cls] if cls < len(class_names) else str(cls)
        hypothesis.hypothesis.score = score
        bbox = BoundingBox2D(size_x=x2 - x1, size_y=y2 - y1)
        bbox.center.position.x = (x1 + x2) * 0.5
        bbox.center.position.y = (y1 + y2) * 0.5
        out.detections.append(Detection2D(header=header, results=[hypothesis], bbox=bbox))
    return out


def label_info_msg(class_names: Sequence[str], threshold: float, header: Header) -> LabelInfo:
    return LabelInfo(
        header=header,
        class_map=[VisionClass(class_id=i, class_name=n) for i, n in enumerate(class_names)],
        threshold=float(threshold),
    )
