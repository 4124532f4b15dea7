"""INT8 variants: static Q/DQ quantization with ONNX Runtime's quantizer.

Two recipes share one calibration (the tensor ranges are independent of the integer type):

* ``trt`` - symmetric signed activations and per-channel signed weights (s8s8), zero point
  0 everywhere, float biases: the form TensorRT's strongly typed builder takes (its ONNX
  parser rejects a DequantizeLinear of an int32 bias: "only activation types allowed as
  input to this layer"). Q/DQ only on convolution inputs and weights, none on outputs -
  TensorRT's placement advice for weighted layers: the builder fuses Conv + SiLU and
  quantizes once, at the next convolution's input. Measured on the shipped model (ranges
  from 512 augmented frames, percentile, 800 test frames, evaluated through ONNX Runtime's
  exact Q/DQ arithmetic): mAP@0.5 0.9878 vs fp32 0.9874, worst lux-bin drop 0.0042; the
  same ranges with Q/DQ around every op (after each Sigmoid and Mul too) gave 0.9745.
* ``ort`` - unsigned activations, per-channel signed weights (u8s8), int32 biases, Q/DQ
  around every op: what ONNX Runtime's x86 kernels run fast (QLinearConv with VNNI,
  QLinearSigmoid, QLinearMul: each needs a Q on its output). Three requantizations per
  Conv+SiLU cost accuracy (0.983 on the shipped model; the dark bin drops most). On this
  CPU the ``trt`` file runs at 0.6-0.7x fp32 speed (its convolutions see dequantized
  inputs, and ONNX Runtime's CPU kernels have no fast s8s8 path): it is for TensorRT.
  The ``ort`` file then gets :mod:`~edge_trt_ros.variants.nhwc_layout`'s exact rewrites
  (upsampling as uint8 copies, an anchor-major head), kept only when ONNX Runtime's
  outputs stay bit-identical.

Before quantizing, the base graph is pre-processed (``quant_pre_process``: ONNX shape
inference plus ONNX Runtime's basic graph optimisation), which folds each BatchNorm into its
convolution. Quantizing the folded weights is what both runtimes execute; quantizing a Conv
and leaving a separate BatchNorm (which neither quantizer nor ONNX Runtime's int8 kernels
handle) would leave a float BatchNorm and a Q/DQ pair after every convolution.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
from onnxruntime.quantization import QuantFormat, QuantType, quant_pre_process, quantize_static

from edge_trt_ros.files import save_model_atomic
from edge_trt_ros.model_info import PRECISION_KEY
from edge_trt_ros.variants import nhwc_layout, nodes
from edge_trt_ros.variants.calibration import METHODS, CalibrationResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Int8Recipe:
    """One way of turning calibrated ranges into a Q/DQ graph."""

    key: str  # "trt" | "ort"
    name: str  # recorded in the manifest
    target: str
    activation_type: QuantType
    weight_type: QuantType
    per_channel: bool
    activation_symmetric: bool
    weight_symmetric: bool
    quantize_bias: bool
    op_types: tuple[str, ...] | None = None  # None: every op type the quantizer knows
    quantize_outputs: bool = True  # False: Q/DQ on op inputs only (TensorRT placement)
    nhwc_layout: bool = False  # variants.nhwc_layout's exact rewrites (ONNX Runtime's kernels)

    def extra_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "ActivationSymmetric": self.activation_symmetric,
            "WeightSymmetric": self.weight_symmetric,
            "QuantizeBias": self.quantize_bias,
        }
        if not self.quantize_outputs:
            options["OpTypesToExcludeOutputQuantization"] = list(self.op_types or ())
        return options

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "target": self.target,
            "activation_type": self.activation_type.name, "weight_type": self.weight_type.name,
            "per_channel": self.per_channel, "activation_symmetric": self.activation_symmetric,
            "weight_symmetric": self.weight_symmetric, "quantize_bias": self.quantize_bias,
            "format": "QDQ", "op_types": list(self.op_types) if self.op_types else "all",
            "quantize_outputs": self.quantize_outputs, "nhwc_layout": self.nhwc_layout,
        }


RECIPES: dict[str, Int8Recipe] = {
    "trt": Int8Recipe("trt", "qdq-s8s8-symmetric-perchannel", "tensorrt",
                      QuantType.QInt8, QuantType.QInt8, True, True, True, False, ("Conv",),
                      False),
    "ort": Int8Recipe("ort", "qdq-u8s8-perchannel", "onnxruntime-cpu",
                      QuantType.QUInt8, QuantType.QInt8, True, False, True, True,
                      nhwc_layout=True),
}


def _has_static_shapes(model: onnx.ModelProto) -> bool:
    dims = [d for v in model.graph.input for d in v.type.tensor_type.shape.dim]
    return all(d.HasField("dim_value") for d in dims)


def prepare_for_quantization(
    src: str | os.PathLike[str], dst: str | os.PathLike[str]
) -> Path:
    """Shape inference + basic graph optimisation (BatchNorm folding), every node named.

    Symbolic shape inference (which needs sympy) only runs for models with dynamic input
    shapes; ONNX shape inference covers static ones like the shipped model.
    """
    static = _has_static_shapes(onnx.load(str(src), load_external_data=False))
    with tempfile.TemporaryDirectory(prefix="edge_trt_pre.") as tmp:
        out = Path(tmp) / "pre.onnx"
        try:
            quant_pre_process(str(src), str(out), skip_symbolic_shape=static)
        except ImportError as exc:
            raise ValueError(
                f"{src} has dynamic input shapes and symbolic shape inference needs sympy "
                f"(pip install sympy), or export the model with static shapes: {exc}"
            ) from exc
        model = onnx.load(str(out))
    nodes.name_every_node(model)
    return save_model_atomic(model, dst)


def set_metadata(model: onnx.ModelProto, values: dict[str, str]) -> None:
    """Add/overwrite metadata entries (class names, imgsz, variant facts) in place."""
    props = {p.key: p.value for p in model.metadata_props}
    props.update(values)
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))


def quantize_int8(
    prepared: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    recipe: Int8Recipe,
    calibration: CalibrationResult,
    float_nodes: list[str],
    metadata: dict[str, str] | None = None,
) -> tuple[Path, list[str]]:
    """Write the Q/DQ variant of ``prepared`` using the cached calibration ranges; also
    return the NHWC layout rewrites applied (empty when the recipe has none or none match)."""
    with tempfile.TemporaryDirectory(prefix="edge_trt_q.") as tmp:
        out = Path(tmp) / "q.onnx"
        quantize_static(
            str(prepared), str(out), calibration_data_reader=None,
            quant_format=QuantFormat.QDQ,
            activation_type=recipe.activation_type, weight_type=recipe.weight_type,
            per_channel=recipe.per_channel, nodes_to_exclude=list(float_nodes),
            op_types_to_quantize=list(recipe.op_types) if recipe.op_types else None,
            calibrate_method=METHODS[calibration.method],
            extra_options=recipe.extra_options(),
            calibration_cache_path=str(calibration.ranges_path),
        )
        model = onnx.load(str(out))
    rewrites: list[str] = []
    if recipe.nhwc_layout:
        model, rewrites = _with_nhwc_layout(model)
    set_metadata(model, {**(metadata or {}), PRECISION_KEY: "int8",
                         "edge_trt_ros.recipe": recipe.name,
                         "edge_trt_ros.calibration": calibration.key})
    log.info("int8 %s -> %s (%d nodes kept float)", recipe.name, dst, len(float_nodes))
    return save_model_atomic(model, dst), rewrites


def _with_nhwc_layout(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """The rewritten graph if ONNX Runtime gives it the same outputs bit for bit on two
    inputs; otherwise the graph as quantized (a rewrite that changed a value is a bug)."""
    rewritten, changed = nhwc_layout.rewrite_for_nhwc(model)
    if not changed:
        return model, []
    mismatch = nhwc_layout.output_mismatch(model, rewritten)
    if mismatch:
        log.warning("NHWC layout rewrites left out: %s; the int8 file keeps the quantizer's "
                    "graph (same accuracy, slower on ONNX Runtime)", mismatch)
        return model, []
    return rewritten, changed
