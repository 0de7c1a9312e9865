"""`If` branches as plain graphs.

Two jobs need a branch as if it were the main graph: shape probing (onnx shape inference knows
little inside branches, and onnxruntime cannot expose a branch's values as outputs) and
verification (seeded inputs take one branch; the other must be checked too). Inlining every `If`
to its then-branch, and separately to its else-branch, yields two ordinary models that together
run every branch of every `If` once.
"""

from __future__ import annotations

import copy

import onnx

BRANCHES = ("then_branch", "else_branch")


def has_if(model: onnx.ModelProto) -> bool:
    return any(n.op_type == "If" for n in model.graph.node)


def inline_ifs(model: onnx.ModelProto, branch: str) -> onnx.ModelProto:
    """A copy of `model` with every `If` (nested ones too) replaced by the nodes of `branch`."""
    if branch not in BRANCHES:
        raise ValueError(f"branch must be one of {BRANCHES}")
    model = copy.deepcopy(model)
    _inline_graph(model.graph, branch)
    return model


def _inline_graph(graph: onnx.GraphProto, branch: str) -> None:
    nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        if node.op_type != "If" or node.domain not in ("", "ai.onnx"):
            nodes.append(node)
            continue
        body = next(a.g for a in node.attribute if a.name == branch)
        _inline_graph(body, branch)
        graph.initializer.extend(body.initializer)
        nodes.extend(body.node)
        for out, res in zip(node.output, body.output):
            if out:
                nodes.append(onnx.helper.make_node("Identity", [res.name], [out], name=f"{out}__inlined"))
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]


def clear_branch_value_info(graph: onnx.GraphProto) -> None:
    """Drop stale intermediate shapes inside every subgraph (the main graph's are refreshed apart)."""
    from .graph import subgraphs

    for node in graph.node:
        for sub in subgraphs(node):
            del sub.value_info[:]
            clear_branch_value_info(sub)
