"""What an engine is, as one frozen value: the single input of :func:`registry.open_engine`.

Everything that decides which engine runs (backend, variant file, the precision that file
holds, fusion profile, device, threads, TensorRT build settings, cache directory) lives
here, so the node, the CLI and the benchmarks open engines the same way, a switch is "open
another spec", and two specs that compare equal are the same engine.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from edge_trt_ros.choices import BACKENDS, FUSION_PROFILES, PRECISIONS
from edge_trt_ros.engines.tensorrt_build import TrtBuildConfig
from edge_trt_ros.errors import EngineError


def parse_device(device: str) -> tuple[str, int]:
    """``"cpu"`` -> ("cpu", 0); ``"cuda"``/``"cuda:1"`` -> ("cuda", 1)."""
    kind, _, index = device.partition(":")
    if kind == "cpu" and not index:
        return "cpu", 0
    if kind == "cuda" and (not index or index.isdigit()):
        return "cuda", int(index or 0)
    raise EngineError(f"device {device!r} is not 'cpu' or 'cuda:N'")


@dataclass(frozen=True)
class EngineSpec:
    """One engine: backend and variant file, with everything that changes how it runs.

    ``precision`` is what ``model_path`` holds (the variant file decides; this field only
    says it, for reports and cache keys). ``device`` is ``cpu`` or ``cuda:N``.
    ``calibration_sha256`` is the int8 file's calibration key (a TensorRT cache-key field).
    ``trt_options`` are device-wide TensorRT build settings (workspace, batch, DLA core) as
    ``(name, value)`` pairs of :class:`TrtBuildConfig` fields; the per-variant ones come from
    the fusion table. ``cache_dir`` is the engine cache: TensorRT plans, and the graphs ONNX
    Runtime optimised for this CPU ("" = no cache). ``max_batch`` > 1 asks for an engine
    that runs up to that many frames in one inference (several cameras): a batch-1 file is
    opened through its dynamic-batch copy (:mod:`~edge_trt_ros.engines.dynamic_batch`).
    """

    backend: str
    model_path: str
    precision: str = "fp32"
    fusion_profile: str = "max"
    device: str = "cpu"
    intra_op_threads: int = 0
    cache_dir: str = ""
    calibration_sha256: str = ""
    trt_options: tuple[tuple[str, object], ...] = ()
    max_batch: int = 1

    def __post_init__(self) -> None:
        problems = []
        if self.backend not in BACKENDS:
            problems.append(f"backend {self.backend!r} is not one of {', '.join(BACKENDS)} "
                            "('auto' is resolved by the registry first)")
        if self.precision not in PRECISIONS:
            problems.append(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.fusion_profile not in FUSION_PROFILES:
            problems.append(f"fusion profile {self.fusion_profile!r} is not one of "
                            f"{', '.join(FUSION_PROFILES)} ('auto' is resolved first)")
        if self.max_batch < 1:
            problems.append(f"max_batch {self.max_batch} is below 1")
        if self.intra_op_threads < 0:
            problems.append(f"intra_op_threads {self.intra_op_threads} is negative")
        try:
            kind, _ = parse_device(self.device)
        except EngineError as exc:
            problems.append(str(exc))
        else:
            if self.backend == "tensorrt" and kind != "cuda":
                problems.append("TensorRT runs on a GPU: device must be 'cuda:N'")
        if problems:
            raise EngineError("invalid engine spec: " + "; ".join(problems))

    @property
    def device_kind(self) -> str:
        return parse_device(self.device)[0]

    @property
    def device_index(self) -> int:
        return parse_device(self.device)[1]

    def trt_config(self) -> TrtBuildConfig:
        """The TensorRT build configuration this spec builds with (raises ValueError on a
        bad option)."""
        return TrtBuildConfig.for_variant(self.precision, self.fusion_profile,
                                          calibration_sha256=self.calibration_sha256,
                                          **dict(self.trt_options))

    def with_variant(self, model_path: str, precision: str, fusion_profile: str,
                     calibration_sha256: str = "") -> EngineSpec:
        """The same backend, device, threads and build options on another variant."""
        return replace(self, model_path=model_path, precision=precision,
                       fusion_profile=fusion_profile, calibration_sha256=calibration_sha256)

    @property
    def variant(self) -> tuple[str, str]:
        """(precision, fusion profile): what an operator switches between."""
        return self.precision, self.fusion_profile
