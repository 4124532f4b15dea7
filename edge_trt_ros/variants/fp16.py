"""The fp16 variant: weights and activations in half precision, fp32 inputs/outputs kept.

Made with onnxconverter-common (``keep_io_types=True``), so the letterbox and decode code
stays the same for every variant and TensorRT builds it strongly typed as written. The
whole graph is converted, decode tail included (box edges near x=500 then move in steps of
0.25-0.5 px, far below what mAP@0.5 sees): the converter's ``node_block_list`` was tried
for the tail and produced a float16 graph output despite ``keep_io_types`` plus cast
chains inside the tail (onnxconverter-common 1.16), so it is not used. ONNX Runtime's CPU
provider has few fp16 kernels and inserts casts around the rest, so on a CPU this variant
is about as fast as fp32: it exists for GPUs.
"""

from __future__ import annotations

import warnings

import onnx
from onnxconverter_common import float16

RECIPE = "onnxconverter-common float16, keep_io_types"


def convert_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """An fp16 copy of ``model`` with fp32 graph inputs and outputs (checked)."""
    with warnings.catch_warnings():
        # It warns once per weight below fp16's range (BatchNorm variances ~1e-9), which
        # it clamps to 1e-7: harmless next to BatchNorm's epsilon, and far too chatty.
        warnings.filterwarnings("ignore", "the float32 number", UserWarning)
        converted = float16.convert_float_to_float16(model, keep_io_types=True)
    if not isinstance(converted, onnx.ModelProto):  # pragma: no cover - library contract
        raise TypeError("onnxconverter-common returned no ModelProto")
    io = [*converted.graph.input, *converted.graph.output]
    wrong = [v.name for v in io if v.type.tensor_type.elem_type != onnx.TensorProto.FLOAT]
    if wrong:
        raise ValueError(f"fp16 conversion left non-fp32 graph inputs/outputs {wrong}; the "
                         f"variants expect an fp32 base model")
    return converted

