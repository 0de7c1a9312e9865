"""Fold data-movement ops on constants into initializers before analysis.

The dynamo exporter builds each LSTM's `W`/`R` at run time from the torch weight with four
`Slice`s, a gate-reordering `Concat` and an `Unsqueeze`. Handlers only slice constants, so such a
weight would block its group. Folding only ops that move data (no arithmetic) keeps the values
bit-identical; the folded graph is used only when something is actually pruned.

Arithmetic on constants alone (weight norm `g * v / ||v||`, scaled weights) is folded too, by
onnxruntime itself: the same CPU kernels that compute it when a session starts, so the folded
values are the ones the model uses at run time.
"""

from __future__ import annotations

import copy

import numpy as np
import onnx

from . import external
from .graph import GraphIndex

FOLDABLE = {"Slice", "Concat", "Unsqueeze", "Squeeze", "Reshape", "Transpose", "Gather", "Split", "Identity",
            "Flatten", "Expand"}
MAX_ELEMENTS = 50_000_000


def fold_constants(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """A copy of `model` with foldable constant subexpressions replaced by initializers."""
    if not any(n.op_type in FOLDABLE | ARITHMETIC and n.domain in ("", "ai.onnx") for n in model.graph.node):
        return model, 0
    from onnx.reference import ReferenceEvaluator

    model = copy.deepcopy(model)
    index = GraphIndex.build(model)
    values = {}
    folded = []
    outputs = {o.name for o in model.graph.output}
    for node in model.graph.node:
        if node.op_type not in FOLDABLE or node.domain not in ("", "ai.onnx"):
            continue
        inputs = [i for i in node.input if i]
        if not inputs or any(i in index.graph_inputs for i in inputs):
            continue
        arrays = []
        for name in node.input:
            if not name:
                arrays.append(None)
            elif name in values:
                arrays.append(values[name])
            elif index.is_const(name):
                arrays.append(index.const(name))
            else:
                break
        else:
            try:
                result = ReferenceEvaluator(node).run(None, {n: a for n, a in zip(node.input, arrays) if n})
            except Exception:
                continue
            if any(r.size > MAX_ELEMENTS for r in result) or any(o in outputs for o in node.output):
                continue
            for name, value in zip(node.output, result):
                values[name] = value
            folded.append(node)
    folded += _fold_arithmetic(model, index, values, outputs)
    if not folded:
        return model, 0
    for node in folded:
        model.graph.node.remove(node)
    on_disk = external.has_external(model)
    for name, value in values.items():
        model.graph.initializer.append(external.make_tensor(value, name, on_disk=on_disk))
    remove_dead(model)
    return model, len(folded)


ARITHMETIC = {"Mul", "Div", "Add", "Sub", "Pow", "Sqrt", "Reciprocal", "Neg", "Abs", "Exp", "Log",
              "ReduceL2", "ReduceSum", "ReduceMean", "ReduceSumSquare", "Max", "Min", "Cast"}


def _fold_arithmetic(model, index: GraphIndex, values: dict, outputs: set) -> list:
    """Arithmetic nodes whose inputs are all constants, evaluated in one onnxruntime session."""
    const = set(values) | set(index.initializers) | set(index.const_nodes)
    chosen = []
    for node in model.graph.node:
        if node.op_type not in ARITHMETIC or node.domain not in ("", "ai.onnx") or any(o in outputs for o in node.output):
            continue
        if any(i in index.graph_inputs and i not in index.initializers for i in node.input if i):
            continue
        if all(i in const for i in node.input if i) and node.input:
            chosen.append(node)
            const.update(o for o in node.output if o)
    if not chosen:
        return []
    from .runtime import make_session

    produced = {o for n in chosen for o in n.output if o}
    needed = sorted({i for n in chosen for i in n.input if i and i not in produced})
    wanted = sorted(o for o in produced)
    inits = []
    for name in needed:
        value = values[name] if name in values else index.const(name)
        inits.append(external.make_tensor(np.asarray(value), name, on_disk=False))
    graph = onnx.helper.make_graph(list(chosen), "fold", [], [onnx.ValueInfoProto(name=n) for n in wanted], inits)
    sub = onnx.helper.make_model(graph, opset_imports=list(model.opset_import))
    sub.ir_version = min(model.ir_version or 8, 8) if model.ir_version >= 3 else 8
    try:
        results = make_session(sub, optimization="disable", quiet=True).run(wanted, {})
    except Exception:
        return []  # folding is an optimisation of the analysis, never a reason to fail
    if any(r.size > MAX_ELEMENTS for r in results):
        return []
    values.update(zip(wanted, results))
    return chosen


def remove_dead(model: onnx.ModelProto) -> None:
    """Drop nodes whose outputs nobody reads and initializers nobody reads (graph inputs stay)."""
    while True:
        index = GraphIndex.build(model)
        live = set(index.graph_outputs)
        dead = [n for n in model.graph.node
                if not any(o in live or index.consumers(o) for o in n.output if o)]
        if not dead:
            break
        for n in dead:
            model.graph.node.remove(n)
    index = GraphIndex.build(model)
    unused = [t for t in model.graph.initializer
              if not index.consumers(t.name) and t.name not in index.graph_inputs and t.name not in index.graph_outputs]
    for t in unused:
        model.graph.initializer.remove(t)
