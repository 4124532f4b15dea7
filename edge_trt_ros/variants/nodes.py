"""Which nodes of a detector graph play which role, for keeping parts in float.

* the **decode tail**: everything after the last convolutions (reshapes, the DFL softmax and
  projection, box arithmetic in pixels, score sigmoid, the final concat). It is box
  maths, not a learned layer: quantizing the concat of pixel coordinates (0..640) with
  scores (0..1) under one scale erases the scores, so every variant keeps it float.
* the **first convolution**: it sees the raw image; under symmetric int8 the 0..1 input
  keeps only 7 bits, and its few input channels gain little from int8 kernels anyway.
* the **detection head**: the nodes under a name prefix (``/model/detect`` in the shipped
  model, as exported by Ultralytics-style modules), the layers whose outputs are the box
  distributions and class logits.
"""

from __future__ import annotations

from collections import defaultdict

import onnx

WEIGHTED_OPS = frozenset({"Conv", "ConvTranspose"})
DEFAULT_HEAD_PREFIX = "/model/detect"


def name_every_node(model: onnx.ModelProto) -> None:
    """Give every node a unique name in place (``<op>_<index>`` where it had none or a
    duplicate): the quantizer's exclusions and the layout rewrites address nodes by name."""
    seen: set[str] = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
        seen.add(node.name)


def decode_tail(model: onnx.ModelProto) -> list[str]:
    """Names of non-convolution nodes from which no convolution is reachable."""
    nodes = list(model.graph.node)
    consumers: dict[str, list[int]] = defaultdict(list)
    for i, node in enumerate(nodes):
        for name in node.input:
            consumers[name].append(i)
    # Graph nodes are topologically sorted: walking backwards sees consumers first.
    feeds_conv = [False] * len(nodes)
    for i in range(len(nodes) - 1, -1, -1):
        feeds_conv[i] = any(
            nodes[c].op_type in WEIGHTED_OPS or feeds_conv[c]
            for out in nodes[i].output for c in consumers[out]
        )
    return [n.name for n, f in zip(nodes, feeds_conv, strict=True)
            if n.op_type not in WEIGHTED_OPS and not f]


def first_convolution(model: onnx.ModelProto) -> list[str]:
    """Name of the first convolution in topological order (empty if there is none)."""
    for node in model.graph.node:
        if node.op_type in WEIGHTED_OPS:
            return [node.name]
    return []


def head_nodes(model: onnx.ModelProto, prefix: str = DEFAULT_HEAD_PREFIX) -> list[str]:
    """Nodes whose names start with ``prefix``; an error if none do (wrong prefix)."""
    names = [n.name for n in model.graph.node if n.name.startswith(prefix)]
    if not names:
        raise ValueError(
            f"no node name starts with the detection-head prefix {prefix!r}; pass the prefix "
            f"of this model's head (e.g. --head-prefix /model.22) or drop --mixed"
        )
    return names


def prefixed_nodes(model: onnx.ModelProto, prefix: str) -> list[str]:
    """Nodes whose names start with ``prefix``; an error if none do (a typo keeps nothing)."""
    names = [n.name for n in model.graph.node if n.name.startswith(prefix)]
    if not names:
        raise ValueError(f"no node name starts with {prefix!r}; check the model's node names "
                         f"(e.g. with Netron) and pass an existing prefix")
    return names


def float_nodes(model: onnx.ModelProto, *, mixed: bool,
                head_prefix: str = DEFAULT_HEAD_PREFIX,
                prefixes: tuple[str, ...] = ()) -> list[str]:
    """Nodes an int8 variant keeps in float: the decode tail, plus first conv + head if
    ``mixed``, plus every node under one of ``prefixes``."""
    names = decode_tail(model)
    if mixed:
        names += first_convolution(model) + head_nodes(model, head_prefix)
    for prefix in prefixes:
        names += prefixed_nodes(model, prefix)
    unnamed = [n for n in model.graph.node if not n.name]
    if unnamed:
        raise ValueError(
            f"{len(unnamed)} nodes have no name, so they cannot be excluded from "
            f"quantization; run int8.prepare_for_quantization (it names them) first"
        )
    return list(dict.fromkeys(names))
