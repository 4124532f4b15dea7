"""count_macs on small ONNX graphs built here, with MACs worked out by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge_trt_ros.macs import conv_output_size, count_macs


def model(
    nodes: list[onnx.NodeProto],
    inputs: dict[str, list[Any]],
    weights: dict[str, tuple[int, ...]],
    output: str = "y",
) -> onnx.ModelProto:
    inits = [
        numpy_helper.from_array(np.zeros(shape, dtype=np.float32), name)
        for name, shape in weights.items()
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)],
        inits,
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return m


def conv(**attrs: Any) -> onnx.NodeProto:
    return helper.make_node("Conv", ["x", "w"], ["y"], **attrs)


def test_conv_3x3_same() -> None:
    m = model([conv(pads=[1, 1, 1, 1])], {"x": [1, 3, 32, 32]}, {"w": (16, 3, 3, 3)})
    assert count_macs(m) == 16 * 32 * 32 * 3 * 9


def test_conv_strides_dilations_pads() -> None:
    m = model(
        [conv(strides=[2, 2], dilations=[2, 2], pads=[2, 2, 2, 2])],
        {"x": [2, 4, 20, 20]},
        {"w": (8, 4, 3, 3)},
    )
    out = (20 + 4 - 5) // 2 + 1  # 10
    assert count_macs(m) == 2 * 8 * out * out * 4 * 9


def test_depthwise_and_grouped_conv() -> None:
    dw = model([conv(group=8, pads=[1, 1, 1, 1])], {"x": [1, 8, 16, 16]}, {"w": (8, 1, 3, 3)})
    assert count_macs(dw) == 8 * 16 * 16 * 1 * 9
    grouped = model([conv(group=2)], {"x": [1, 8, 10, 10]}, {"w": (6, 4, 1, 1)})
    assert count_macs(grouped) == 6 * 10 * 10 * 4


@pytest.mark.parametrize(("auto_pad", "out"), [("SAME_UPPER", 8), ("SAME_LOWER", 8), ("VALID", 7)])
def test_conv_auto_pad(auto_pad: str, out: int) -> None:
    m = model([conv(strides=[2, 2], auto_pad=auto_pad)], {"x": [1, 2, 15, 15]}, {"w": (4, 2, 3, 3)})
    assert count_macs(m) == 4 * out * out * 2 * 9


def test_conv1d_with_bias() -> None:
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"])
    m = model([node], {"x": [1, 3, 100]}, {"w": (5, 3, 7), "b": (5,)})
    assert count_macs(m) == 5 * 94 * 3 * 7


def test_conv_transpose_plain_and_grouped() -> None:
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2])
    m = model([node], {"x": [1, 4, 8, 8]}, {"w": (4, 2, 3, 3)})
    assert count_macs(m) == 4 * 8 * 8 * 2 * 9  # each input element scatters C_out*k*k
    g = helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2], group=2)
    m = model([g], {"x": [1, 4, 8, 8]}, {"w": (4, 3, 2, 2)})
    assert count_macs(m) == 4 * 8 * 8 * 3 * 4


def test_gemm_with_transposes() -> None:
    node = helper.make_node("Gemm", ["a", "b", "c"], ["y"], transB=1)
    m = model([node], {"a": [2, 64]}, {"b": (10, 64), "c": (10,)})
    assert count_macs(m) == 2 * 64 * 10
    node = helper.make_node("Gemm", ["a", "b"], ["y"], transA=1)
    m = model([node], {"a": [64, 3]}, {"b": (64, 5)})
    assert count_macs(m) == 3 * 64 * 5


def test_matmul_batched_broadcast_and_vectors() -> None:
    m = model([helper.make_node("MatMul", ["a", "b"], ["y"])], {"a": [2, 3, 4, 5]}, {"b": (5, 6)})
    assert count_macs(m) == 2 * 3 * 4 * 5 * 6
    m = model([helper.make_node("MatMul", ["a", "b"], ["y"])], {"a": [7]}, {"b": (7, 3)})
    assert count_macs(m) == 7 * 3


def test_whole_network_from_a_file(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("GlobalAveragePool", ["r1"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "w2"], ["y"], transB=1),
    ]
    m = model(nodes, {"x": [1, 3, 64, 64]}, {"w1": (8, 3, 3, 3), "w2": (10, 8)})
    path = tmp_path / "net.onnx"
    onnx.save(m, str(path))
    expected = 8 * 32 * 32 * 3 * 9 + 8 * 10
    assert count_macs(path) == expected == count_macs(str(path)) == count_macs(m)


def test_symbolic_batch_counts_as_one() -> None:
    m = model([conv()], {"x": ["N", 3, 8, 8]}, {"w": (4, 3, 1, 1)})
    assert count_macs(m) == 4 * 8 * 8 * 3


def test_no_compute_layers() -> None:
    m = model([helper.make_node("Relu", ["x"], ["y"])], {"x": [1, 3]}, {})
    assert count_macs(m) == 0


@pytest.mark.parametrize(
    ("args", "out"),
    [
        ((32, 3, 1, 1, 1, 1), 32),
        ((32, 3, 2, 1, 1, 1), 16),
        ((20, 3, 2, 2, 2, 2), 10),
        ((15, 3, 2, 1, 0, 0, "SAME_UPPER"), 8),
        ((15, 3, 2, 1, 0, 0, "VALID"), 7),
        ((7, 7, 1, 1, 0, 0), 1),
    ],
)
def test_conv_output_size(args: tuple[Any, ...], out: int) -> None:
    assert conv_output_size(*args) == out


def test_shipped_model_macs_are_counted_from_static_shapes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """1.44 GMACs at 384x512; a symbolic-shape regression would count far fewer."""
    from edge_trt_ros.resources import DEFAULT_MODEL, find_resource

    with caplog.at_level("WARNING", logger="edge_trt_ros.macs"):
        macs = count_macs(find_resource(DEFAULT_MODEL))
    assert macs == 1_437_646_848
    assert "symbolic" not in caplog.text
