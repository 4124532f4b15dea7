"""Every exception type the package raises, at the bottom layer so any module can use them.

One place means a caller (the node, the CLI) can catch "anything this package refused" as
:class:`EdgeTrtError` and print its message, which always says what to do next; the
subclasses keep the standard base (``ValueError`` for bad input, ``RuntimeError`` for a
failed operation) so generic handlers still work.
"""

from __future__ import annotations


class EdgeTrtError(Exception):
    """Base of the package's errors; the message is written for an operator to act on."""


class ImageFormatError(EdgeTrtError, ValueError):
    """A frame that cannot be interpreted; the reason is meant for a log line."""


class ModelLayoutError(EdgeTrtError, ValueError):
    """The model's inputs/outputs are not a layout this package decodes."""


class ManifestError(EdgeTrtError, ValueError):
    """A variant manifest that is missing, malformed or does not match its files."""


class CacheCorrupt(EdgeTrtError, ValueError):
    """An engine-cache entry is truncated or its bytes do not match its recorded hash."""


class SensorError(EdgeTrtError, RuntimeError):
    """A sensor could not produce a reading; the message says what to do about it."""


class EngineError(EdgeTrtError, RuntimeError):
    """An engine could not be built, loaded or run; the message says what to do."""


class NotBatchable(EngineError):
    """This engine cannot run several frames in one inference; frames go one at a time."""


class CudaError(EngineError):
    """A CUDA runtime, driver or NVRTC call failed; ``name`` is the CUDA error name."""

    def __init__(self, message: str, name: str = "", code: int | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.code = code


class TrtBuildError(EngineError):
    """A build refused by the parser or builder; keeps TensorRT's own messages."""

    def __init__(self, message: str, *, stage: str, parser_errors: list[str] | None = None,
                 builder_errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.stage = stage  # "parse" | "configure" | "build"
        self.parser_errors = parser_errors or []
        self.builder_errors = builder_errors or []


class AdaptiveConfigError(EdgeTrtError, ValueError):
    """An adaptive-controller setting out of range; the message names it and its range."""


class AuditWriteError(EdgeTrtError, RuntimeError):
    """The audit log could not be written (disk full, permissions, read-only filesystem).

    The records that could not be written are kept and retried with the next one;
    ``decision`` is the controller's decision whose record failed (it still stands: a move
    away from a variant outside the accuracy guard must happen even when the disk is full).
    """

    def __init__(self, message: str, *, pending: int = 0, decision: object = None) -> None:
        super().__init__(message)
        self.pending = pending
        self.decision = decision


class ParameterError(EdgeTrtError, ValueError):
    """Parameters given at start (params file, ``-p``) that the node cannot run with; the
    message lists every one with what it expects."""


class UnsafeCacheError(EdgeTrtError, PermissionError):
    """An engine-cache directory or entry that others could have written (wrong owner, group-
    or world-writable, a symlink out of the cache): nothing in it is loaded."""
