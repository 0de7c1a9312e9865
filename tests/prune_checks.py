"""Small look-ups shared by the handler, rewrite and property tests (the builders make the graphs,
these read the results)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
from onnx import numpy_helper

from onnxprune.core.graph import GraphIndex


def producer(model: onnx.ModelProto, output: str) -> onnx.NodeProto:
    """The node of `model` that writes `output` (node names survive pruning, so this works on
    the pruned model too)."""
    for n in model.graph.node:
        if output in n.output:
            return n
    raise KeyError(output)


def node_named(model: onnx.ModelProto, name: str) -> onnx.NodeProto:
    return next(n for n in model.graph.node if n.name == name)


def input_value(model: onnx.ModelProto, output: str, index: int) -> np.ndarray:
    """The constant read by input `index` of the node writing `output`."""
    node = producer(model, output)
    value = GraphIndex.build(model).const(node.input[index])
    assert value is not None, f"input {index} of {node.name} is not a constant"
    return value


def input_shape(model: onnx.ModelProto, output: str, index: int = 1) -> tuple[int, ...]:
    return tuple(input_value(model, output, index).shape)


def op_counts(model: onnx.ModelProto) -> Counter:
    return Counter(n.op_type for n in model.graph.node)


def attr_of(model: onnx.ModelProto, output: str, name: str, default=None):
    node = producer(model, output)
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def group_for(result_or_analysis, model: onnx.ModelProto, output: str):
    """The analysis Group whose sources include the node writing `output`."""
    analysis = getattr(result_or_analysis, "analysis", result_or_analysis)
    name = producer(model, output).name
    hits = [g for g in analysis.groups if name in g.members()]
    assert len(hits) == 1, f"{name} is in {len(hits)} groups"
    return hits[0]


def reasons(result_or_analysis) -> list[str]:
    analysis = getattr(result_or_analysis, "analysis", result_or_analysis)
    return [r for g in analysis.groups for r in g.blocked_by]


def layer(result, model: onnx.ModelProto, output: str) -> dict:
    name = producer(model, output).name
    return next(lay for lay in result.layers if lay["node"] == name)


def graph_input_names(model: onnx.ModelProto) -> list[str]:
    return [v.name for v in model.graph.input]


def initializer(model: onnx.ModelProto, name: str) -> np.ndarray:
    return numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == name))


def prune_ok(model: onnx.ModelProto, **options):
    """`assert_pruned_ok` with round_to=1 unless given, so kept counts are exactly size - floor(size*ratio)."""
    from builders import assert_pruned_ok

    options.setdefault("round_to", 1)
    return assert_pruned_ok(model, **options)
