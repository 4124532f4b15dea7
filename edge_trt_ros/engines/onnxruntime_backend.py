"""ONNX Runtime backend (CPU by default; other execution providers when installed)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edge_trt_ros.engines.base import EngineInfo
from edge_trt_ros.engines.fusion import fusion_settings
from edge_trt_ros.engines.spec import parse_device
from edge_trt_ros.errors import EngineError
from edge_trt_ros.files import sha256_file

GRAPH_OPTIMIZATION = {
    "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


class OnnxRuntimeEngine:
    """An ``InferenceSession`` whose graph optimisation level comes from the fusion profile.

    ``optimized_model_path`` saves the graph ONNX Runtime actually runs and ``profile_prefix``
    turns on its per-node profiler; both exist for the fusion report, not the hot path.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        *,
        precision: str = "fp32",
        fusion_profile: str = "max",
        intra_op_threads: int = 0,
        device: str = "cpu",
        optimized_model_path: str | os.PathLike[str] | None = None,
        profile_prefix: str | os.PathLike[str] | None = None,
    ) -> None:
        try:
            level = fusion_settings(fusion_profile).ort_graph_optimization
        except ValueError as exc:
            raise EngineError(str(exc)) from None
        options = ort.SessionOptions()
        options.graph_optimization_level = GRAPH_OPTIMIZATION[level]
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if optimized_model_path is not None:
            options.optimized_model_filepath = str(optimized_model_path)
        if profile_prefix is not None:
            options.enable_profiling = True
            options.profile_file_prefix = str(profile_prefix)
        kind, index = parse_device(device)
        chosen = ["CPUExecutionProvider"]
        provider_options: list[dict[str, str]] = [{}]
        if kind == "cuda":
            chosen.insert(0, "CUDAExecutionProvider")
            provider_options.insert(0, {"device_id": str(index)})
        missing = [p for p in chosen if p not in ort.get_available_providers()]
        if missing:
            raise EngineError(
                f"ONNX Runtime providers {missing} not available here "
                f"(available: {ort.get_available_providers()}); for {device} install "
                "onnxruntime-gpu built for this machine's CUDA"
            )
        try:
            self._session = ort.InferenceSession(
                str(model_path), sess_options=options, providers=chosen,
                provider_options=provider_options,
            )
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/NoSuchFile types
            raise EngineError(f"ONNX Runtime cannot load {model_path}: {exc}") from exc
        self._input = self._session.get_inputs()[0].name
        self._info = EngineInfo(
            backend="onnxruntime",
            backend_version=ort.__version__,
            precision=precision,
            fusion_profile=fusion_profile,
            device=device,
            model_path=str(Path(model_path)),
            engine_id=f"ort-{sha256_file(model_path)[:16]}-{level}-{intra_op_threads}",
            settings={
                "graph_optimization": level,
                "intra_op_threads": str(intra_op_threads),
                "providers": ",".join(chosen),
            },
        )

    @property
    def info(self) -> EngineInfo:
        return self._info

    def infer(self, tensor: np.ndarray) -> Sequence[np.ndarray]:
        try:
            return self._session.run(None, {self._input: tensor})  # type: ignore[no-any-return]
        except AttributeError as exc:
            raise EngineError("engine was released") from exc

    def end_profiling(self) -> Path:
        """Stop the profiler; the path of its Chrome-trace JSON (one event per node run)."""
        return Path(self._session.end_profiling())

    def release(self) -> None:
        self.__dict__.pop("_session", None)
