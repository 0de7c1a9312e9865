"""Depth pruning: residual blocks `y = x + f(x)` become `y = x`, their nodes and weights gone.

The reference keeps every node and zeroes the block's last projection (weight and bias), so its
branch is exactly zero and `x + 0 == x` bit for bit; `verify` must then find the pruned model
equal to it, as for widths.
"""

from __future__ import annotations

import copy

import numpy as np
import onnx

from ..analysis.blocks import Block, find_blocks
from ..core.constants import ConstantWriter
from ..core.fold import remove_dead
from ..core.graph import GraphIndex, subgraphs
from ..core.shapes import infer_value_shapes, input_shapes
from ..errors import UsageError
from .verify import verify


def model_blocks(model: onnx.ModelProto, shapes: dict | None = None, values: dict | None = None) -> list[Block]:
    """The blocks of `model` at the given input shapes (dynamic dims as `--shape` fixes them)."""
    fed = input_shapes(GraphIndex.build(model), shapes or {})
    try:
        value_shapes = infer_value_shapes(model, fed, values)
    except Exception:
        value_shapes = {}
    return find_blocks(model, value_shapes)


def select(blocks: list[Block], names) -> list[Block]:
    """The named blocks, checked removable and disjoint (a one-line error otherwise)."""
    by_name = {b.name: b for b in blocks}
    chosen = []
    for name in names:
        block = by_name.get(name)
        if block is None:
            ok = [b.name for b in blocks if b.removable]
            raise UsageError(f"--drop-blocks names '{name}', which is not a residual Add of this model "
                             f"(removable: {', '.join(ok) or 'none'})")
        if not block.removable:
            raise UsageError(f"block '{name}' cannot be removed: {block.reason}")
        if block not in chosen:
            chosen.append(block)
    taken: dict[int, str] = {}
    for b in chosen:
        for n in b.body + [b.add]:
            if id(n) in taken and taken[id(n)] != b.name:
                raise UsageError(f"blocks '{taken[id(n)]}' and '{b.name}' overlap: drop one of them")
            taken[id(n)] = b.name
    return chosen


def drop_blocks(model: onnx.ModelProto, blocks: list[Block], *, mode: str = "prune") -> onnx.ModelProto:
    """mode='prune': a copy without the blocks; mode='reference': a copy with each block's last
    projection zeroed, every node kept."""
    out = copy.deepcopy(model)
    position = {id(n): k for k, n in enumerate(model.graph.node)}
    nodes = list(out.graph.node)
    if mode == "reference":
        writer = ConstantWriter(out)
        for b in blocks:
            for node, k in b.zero:
                twin = nodes[position[id(node)]]
                writer.set(twin, k, np.zeros_like(writer.current(twin, k)))
        writer.commit()
        return out
    alias: dict[str, str] = {}

    def resolve(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    gone = {position[id(n)] for b in blocks for n in b.body + [b.add]}
    for b in blocks:
        alias[b.add.output[0]] = b.skip
    kept = [n for k, n in enumerate(nodes) if k not in gone]
    del out.graph.node[:]
    out.graph.node.extend(kept)
    _rename_inputs(out.graph, resolve)
    for o in out.graph.output:
        if o.name in alias:
            out.graph.node.append(onnx.helper.make_node("Identity", [resolve(o.name)], [o.name],
                                                        name=f"{o.name}_dropped_block"))
    remove_dead(out)
    produced = {o for n in out.graph.node for o in n.output}
    keep_vi = [v for v in out.graph.value_info if v.name in produced]
    del out.graph.value_info[:]
    out.graph.value_info.extend(keep_vi)
    return out


def _rename_inputs(graph: onnx.GraphProto, resolve) -> None:
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name:
                node.input[i] = resolve(name)
        for sub in subgraphs(node):  # outer-scope reads inside If/Loop bodies
            _rename_inputs(sub, resolve)


def depth_step(model: onnx.ModelProto, names, *, shapes: dict | None = None, values: dict | None = None,
               check: bool = True, atol: float = 1e-5, rtol: float = 1e-4, seed: int = 0):
    """(model without the named blocks, step report): the pipeline's depth stage, verified against
    the zeroed-projection reference unless `check` is False."""
    chosen = select(model_blocks(model, shapes, values), names)
    pruned = drop_blocks(model, chosen)
    info = {"step": "depth", "blocks": [b.to_dict() for b in chosen], "verify": None}
    if check:
        fed = input_shapes(GraphIndex.build(model), shapes or {})
        result = verify(pruned, drop_blocks(model, chosen, mode="reference"), fed, atol=atol, rtol=rtol,
                        original=model, seeds=(seed, seed + 1), values=values)
        info["verify"] = result.to_dict()
    return pruned, info
