"""Compressed camera frames (the payload of ``sensor_msgs/CompressedImage``) to pixels.

image_transport's ``compressed`` plugin publishes JPEG or PNG bytes with a ``format`` string
such as ``"jpeg"``, ``"png"``, ``"bgr8; jpeg compressed bgr8"`` or ``"rgb8; png compressed
bgr8"``. OpenCV decodes both into BGR (or grey for a mono stream); the decode runs on a worker
thread, never in the subscription callback, and a payload that does not decode is an
:class:`~edge_trt_ros.errors.ImageFormatError` like any other frame the node cannot use.
"""

from __future__ import annotations

import struct

import cv2
import numpy as np

from edge_trt_ros.errors import ImageFormatError
from edge_trt_ros.vision.image import ENCODINGS, MAX_SIDE, ImageView

FORMATS = ("jpeg", "png")
_MAGIC = {b"\xff\xd8\xff": "jpeg", b"\x89PNG": "png"}
_JPEG_END, _JPEG_TAIL = b"\xff\xd9", 32  # the EOI marker, within the last bytes (padding)


def payload_format(fmt: str, data: bytes | memoryview) -> str:
    """``jpeg`` or ``png`` from the message's format string, else from the payload's magic
    bytes (some drivers leave ``format`` empty)."""
    text = fmt.lower()
    for name in FORMATS:
        if name in text or (name == "jpeg" and "jpg" in text):
            return name
    head = bytes(data[:4])
    for magic, name in _MAGIC.items():
        if head.startswith(magic):
            return name
    raise ImageFormatError(f"compressed format {fmt!r} is not jpeg or png")


_JPEG_SOF = frozenset((0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD,
                       0xCE, 0xCF))


def declared_size(kind: str, data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR or a JPEG's start-of-frame header, read before
    decoding so a few bytes declaring 30000x30000 never become gigabytes of pixels; None
    when the header is not found (the decoder then refuses the payload itself)."""
    if kind == "png":
        if len(data) >= 24 and data[12:16] == b"IHDR":
            w, h = struct.unpack(">II", data[16:24])
            return w, h
        return None
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # standalone markers: no length
            i += 2
            continue
        if marker in _JPEG_SOF:
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        i += 2 + length
    return None


def decode_compressed(fmt: str, data: object) -> ImageView:
    """Decode a JPEG/PNG payload to a BGR (or mono) :class:`ImageView`.

    Raises ImageFormatError for an empty, unknown or corrupt payload (cv2.imdecode returns
    None for those; a truncated JPEG, which libjpeg would half decode, by its end marker)."""
    buffer = np.frombuffer(data, dtype=np.uint8)  # type: ignore[call-overload]
    if buffer.size == 0:
        raise ImageFormatError("empty compressed payload")
    kind = payload_format(fmt, memoryview(buffer))
    if kind == "jpeg" and _JPEG_END not in bytes(buffer[-_JPEG_TAIL:]):
        # libjpeg "decodes" a truncated file, greying out what is missing: refuse it instead
        raise ImageFormatError(f"truncated jpeg payload ({buffer.size} bytes, no end marker)")
    size = declared_size(kind, bytes(buffer[:65_536]))  # headers come first
    if size is not None and max(size) > MAX_SIDE:
        raise ImageFormatError(f"{kind} header declares {size[0]}x{size[1]}, over "
                               f"{MAX_SIDE} pixels per side (not decoded)")
    pixels = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.size == 0:
        raise ImageFormatError(f"corrupt {kind} payload ({buffer.size} bytes did not decode)")
    if pixels.dtype != np.uint8:  # 16-bit PNG: keep the high byte (the detector takes 8 bit)
        pixels = (pixels.astype(np.uint16) >> 8).astype(np.uint8)
    h, w = pixels.shape[:2]
    if h > MAX_SIDE or w > MAX_SIDE:
        raise ImageFormatError(f"image {w}x{h} exceeds {MAX_SIDE} pixels per side")
    if pixels.ndim == 2:
        return ImageView(pixels[:, :, None], ENCODINGS["mono8"][1])
    channels = pixels.shape[2]
    if channels == 4:
        return ImageView(pixels, ENCODINGS["bgra8"][1])
    if channels == 3:
        return ImageView(pixels, ENCODINGS["bgr8"][1])
    raise ImageFormatError(f"{kind} with {channels} channels is not supported")


def encode_compressed(bgr: np.ndarray, kind: str = "jpeg", quality: int = 90) -> bytes:
    """JPEG/PNG bytes of a BGR (or mono) image, as image_transport's compressed plugin makes
    them (the synthetic camera and the tests publish these)."""
    if kind not in FORMATS:
        raise ValueError(f"format {kind!r} is not one of {FORMATS}")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if kind == "jpeg" else \
        [cv2.IMWRITE_PNG_COMPRESSION, 1]
    ok, out = cv2.imencode(".jpg" if kind == "jpeg" else ".png", bgr, params)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {bgr.shape} image as {kind}")
    return bytes(out.tobytes())
