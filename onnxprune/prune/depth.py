"""Depth pruning: residual blocks `y = x + f(x)` become `y = x`, their nodes and weights gone.

The reference keeps every node and zeroes the block's last projection (weight and bias), so its
branch is exactly zero and `x + 0 == x` bit for bit; `verify` must then find the pruned model
equal to it, as for widths.

Repair (`repair="mean"`): the block becomes `y = x + c` with c = E[f(x)] per channel over the
calibration feeds (first-order compensation of the next consumer); c is folded into the bias of
the single linear reader of y (MatMul + bias Add, Gemm) when there is one, else it stays a
constant Add. The reference is then the zeroed-projection one with `y + c` after the block's Add.
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


REPAIRS = ("none", "mean")


def drop_blocks(model: onnx.ModelProto, blocks: list[Block], *, mode: str = "prune",
                means: dict[str, np.ndarray] | None = None) -> onnx.ModelProto:
    """mode='prune': a copy without the blocks; mode='reference': a copy with each block's last
    projection zeroed, every node kept. `means` (block name -> constant c, from `branch_means`):
    the blocks named there become `y = x + c` (folded into a following linear op's bias when
    possible); the reference adds c after the block's Add."""
    means = means or {}
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
        after: dict[int, onnx.NodeProto] = {}
        for b in blocks:
            if b.name in means:
                add = nodes[position[id(b.add)]]
                y = add.output[0]
                add.output[0] = f"{y}_unrepaired"
                after[position[id(b.add)]] = _const_add(out, add.output[0], y, means[b.name], b.name)
        if after:
            kept = [m for k, n in enumerate(nodes) for m in ([n, after[k]] if k in after else [n])]
            del out.graph.node[:]
            out.graph.node.extend(kept)
        return out
    alias: dict[str, str] = {}

    def resolve(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    gone = {position[id(n)] for b in blocks for n in b.body + [b.add]}
    added: dict[int, onnx.NodeProto] = {}
    folded = []
    for b in blocks:
        if b.name not in means:
            alias[b.add.output[0]] = b.skip
        elif _fold_mean(model, out, nodes, position, b, means[b.name]):
            alias[b.add.output[0]] = b.skip
            folded.append(b.name)
        else:  # y = x + c keeps the name y
            added[position[id(b.add)]] = _const_add(out, b.skip, b.add.output[0], means[b.name], b.name)
    kept = [added.get(k, n) for k, n in enumerate(nodes) if k not in gone or k in added]
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


def _const_add(model: onnx.ModelProto, x: str, y: str, c: np.ndarray, name: str) -> onnx.NodeProto:
    node = onnx.helper.make_node("Add", [x, f"{name}_mean_repair_c"], [y], name=f"{name}_mean_repair")
    model.graph.initializer.append(onnx.numpy_helper.from_array(c.astype(np.float32), f"{name}_mean_repair_c"))
    return node


def _fold_mean(model, out, nodes, position, b: Block, c: np.ndarray) -> bool:
    """Fold `x + c` into the bias of y's single reader when it is linear on the last axis:
    MatMul (2-D constant weight) whose output only a constant-bias Add reads, or Gemm (transA=0)
    with a constant bias. Exact: (x + c) W + b = x W + (b + c W)."""
    index = GraphIndex.build(model)
    y = b.add.output[0]
    uses = index.consumers(y)
    if y in index.graph_outputs or len(uses) != 1 or uses[0].index != 0 or c.ndim < 1 or \
            any(d != 1 for d in c.shape[:-1]):
        return False
    reader = uses[0].node
    w = index.const(reader.input[1]) if len(reader.input) > 1 and reader.input[1] else None
    if w is None or w.ndim != 2:
        return False
    if reader.op_type == "MatMul":
        from .lowrank import _matmul_bias

        bias, wk = _matmul_bias(reader, index), w
    elif reader.op_type == "Gemm" and not _attr(reader, "transA") and len(reader.input) > 2 and reader.input[2] \
            and index.const(reader.input[2]) is not None and index.const(reader.input[2]).ndim == 1 \
            and float(_attr(reader, "beta", 1.0)) != 0.0:
        bias = (reader, 2)  # alpha (x + c) B + beta C = alpha x B + beta (C + alpha c B / beta)
        wk = (w.T if _attr(reader, "transB") else w) * float(_attr(reader, "alpha", 1.0)) / float(_attr(reader, "beta", 1.0))
    else:
        return False
    if bias is None or wk.shape[0] != c.shape[-1]:
        return False
    bnode, bi = bias
    twin = next(n for n in nodes if list(n.output) == list(bnode.output))  # its copy in `out`
    writer = ConstantWriter(out)
    shift = c.reshape(-1).astype(np.float64) @ wk.astype(np.float64)
    writer.set(twin, bi, (writer.current(twin, bi).astype(np.float64) + shift).astype(np.float32))
    writer.commit()
    return True


def _attr(node, name, default=0):
    from ..core.graph import attr

    return attr(node, name, default)


def channel_axis(block: Block, rank: int) -> int:
    """The axis c varies along: 1 for a block ending in a Conv / batch or instance norm on NC...
    data, the last axis otherwise (MatMul/Gemm/LayerNorm on [..., features])."""
    ops = {node.op_type for node, _ in block.zero}
    if rank >= 3 and ops & {"Conv", "ConvTranspose", "BatchNormalization", "InstanceNormalization"}:
        return 1
    return rank - 1


def branch_means(model: onnx.ModelProto, blocks: list[Block], feeds) -> dict[str, np.ndarray]:
    """Per block, c = E[f(x)] per channel over `feeds` (all other axes averaged), shaped to
    broadcast against y ([1, C, 1, ...] or [1, ..., C]); measured on `model` (the original)."""
    from ..calibration.statistics import _with_outputs
    from ..core.runtime import make_session

    names = [b.branch for b in blocks]
    probe, fetched = _with_outputs(model, names)
    session = make_session(probe)
    sums: dict[str, np.ndarray] = {}
    count = 0
    for feed in feeds:
        got = dict(zip(fetched, session.run(fetched, feed)))
        got.update({k: v for k, v in feed.items() if k in names})
        for b in blocks:
            v = np.asarray(got[b.branch], dtype=np.float64)
            axis = channel_axis(b, v.ndim)
            m = v.mean(axis=tuple(a for a in range(v.ndim) if a != axis), keepdims=True)
            sums[b.name] = sums.get(b.name, 0) + m
        count += 1
    if not count:
        raise UsageError("the calibration data holds no examples (the mean repair of dropped blocks needs them)")
    return {k: (v / count).astype(np.float32) for k, v in sums.items()}


def seeded_feeds(model: onnx.ModelProto, shapes: dict | None, values: dict | None, seed: int, count: int = 16):
    """Calibration when no --data is given: `count` seeded random inputs (deterministic, so a plan
    with a repair replays to the same bytes)."""
    from ..core.runtime import make_session, random_feeds

    session = make_session(model)
    fed = input_shapes(GraphIndex.build(model), shapes or {})
    return [random_feeds(session, fed, seed + i, values) for i in range(count)]


def _rename_inputs(graph: onnx.GraphProto, resolve) -> None:
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name:
                node.input[i] = resolve(name)
        for sub in subgraphs(node):  # outer-scope reads inside If/Loop bodies
            _rename_inputs(sub, resolve)


def depth_step(model: onnx.ModelProto, names, *, shapes: dict | None = None, values: dict | None = None,
               check: bool = True, atol: float = 1e-5, rtol: float = 1e-4, seed: int = 0, repair: str = "none",
               calibration=None):
    """(model without the named blocks, step report): the pipeline's depth stage, verified against
    the zeroed-projection reference (plus the repair constants) unless `check` is False.
    repair='mean': c = E[f(x)] from `calibration` (else 16 seeded random inputs)."""
    if repair not in REPAIRS:
        raise UsageError(f"unknown block repair '{repair}' (choose from {', '.join(REPAIRS)})")
    chosen = select(model_blocks(model, shapes, values), names)
    means = None
    if repair == "mean" and chosen:
        feeds = calibration if calibration is not None else seeded_feeds(model, shapes, values, seed)
        means = branch_means(model, chosen, feeds)
    pruned = drop_blocks(model, chosen, means=means)
    info = {"step": "depth", "blocks": [b.to_dict() for b in chosen], "verify": None, "repair": repair}
    if means:
        info["repair_folded"] = [b.name for b in chosen if f"{b.name}_mean_repair_c" not in
                                 {i.name for i in pruned.graph.initializer}]
    if check:
        fed = input_shapes(GraphIndex.build(model), shapes or {})
        result = verify(pruned, drop_blocks(model, chosen, mode="reference", means=means), fed, atol=atol, rtol=rtol,
                        original=model, seeds=(seed, seed + 1), values=values)
        info["verify"] = result.to_dict()
    return pruned, info
