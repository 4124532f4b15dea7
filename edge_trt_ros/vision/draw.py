"""The debug image: a frame with its detections, the running variant and the frame rate.

Drawn on a copy in BGR (what image viewers expect for ``bgr8``), never on the camera's
buffer, which other subscribers of the same message may still read.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from edge_trt_ros.vision.decode import Detections
from edge_trt_ros.vision.image import ImageView

# One colour per class (BGR), repeated for models with more classes.
PALETTE = ((56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207),
           (10, 249, 72), (23, 204, 146), (134, 219, 61), (211, 188, 0), (255, 128, 0))


def to_bgr(view: ImageView) -> np.ndarray:
    """A contiguous HxWx3 BGR copy of ``view`` (any supported encoding)."""
    r, g, b = view.rgb_channels
    if view.pixels.shape[2] == 1:
        return cv2.cvtColor(np.ascontiguousarray(view.pixels[:, :, 0]), cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(view.pixels[:, :, [b, g, r]])


def draw_detections(view: ImageView, found: Detections, class_names: Sequence[str],
                    lines: Sequence[str] = ()) -> np.ndarray:
    """Boxes with "class score" labels, then ``lines`` (variant, fps) top left; BGR."""
    out = to_bgr(view)
    h, w = out.shape[:2]
    scale = max(0.4, min(w, h) / 960.0)
    thick = max(1, round(scale * 2))
    font = cv2.FONT_HERSHEY_SIMPLEX
    for (x1, y1, x2, y2), score, cls in zip(found.boxes.tolist(), found.scores.tolist(),
                                            found.class_ids.tolist(), strict=True):
        colour = PALETTE[int(cls) % len(PALETTE)]
        p1, p2 = (int(round(x1)), int(round(y1))), (int(round(x2)), int(round(y2)))
        cv2.rectangle(out, p1, p2, colour, thick)
        name = class_names[cls] if 0 <= cls < len(class_names) else str(cls)
        label = f"{name} {score:.2f}"
        (tw, th), base = cv2.getTextSize(label, font, scale, 1)
        top = max(p1[1] - th - base - 2, 0)
        cv2.rectangle(out, (p1[0], top), (p1[0] + tw + 2, top + th + base + 2), colour, -1)
        cv2.putText(out, label, (p1[0] + 1, top + th + 1), font, scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
    y = 0
    for text in lines:
        (tw, th), base = cv2.getTextSize(text, font, scale, 1)
        cv2.rectangle(out, (0, y), (tw + 6, y + th + base + 6), (0, 0, 0), -1)
        cv2.putText(out, text, (3, y + th + 3), font, scale, (255, 255, 255), 1, cv2.LINE_AA)
        y += th + base + 6
    return out
