"""Residual blocks `y = x + f(x)` that depth pruning may remove, each with the reason it may not.

A candidate is a two-input `Add` of the main graph whose one operand (the skip, `x`) is an
ancestor of the other (the branch, `f(x)`). Its *body* is every node on a path from `x` to the
branch operand. Removal makes `y = x` and deletes the body, so it is allowed only when

* nothing outside the body reads a value the body computes (else removal breaks that reader);
* `x` and `y` have the same shape (no broadcast in the Add: else `y = x` changes a shape);
* the branch ends, through ops that keep zeros zero (Transpose, Reshape, Mul by a constant,
  a bias Add, ...), in a *last projection* (Conv/Gemm/MatMul or a normalization's affine
  parameters) whose zeroing makes the branch exactly zero. That zeroing is the reference the
  removal is verified against, as width pruning zeroes consumer slices.

Blocks are named after their merge `Add` (node name, else its output), stable across replays.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import onnx

from ..core.graph import GraphIndex, node_label

# ops through which a zero branch stays zero (walked back from the branch operand)
ZERO_KEEPING = {"Transpose", "Reshape", "Squeeze", "Unsqueeze", "Identity", "Dropout", "Flatten", "Relu",
                "Cast", "Expand", "Slice", "Gather", "Split", "MaxPool"}
# op -> indices of the constant inputs whose zeroing makes the output exactly zero
PROJECTIONS = {"Conv": (1, 2), "ConvTranspose": (1, 2), "Gemm": (1, 2), "MatMul": (1,),
               "BatchNormalization": (1, 2), "LayerNormalization": (1, 2), "InstanceNormalization": (1, 2)}


@dataclass
class Block:
    name: str
    add: onnx.NodeProto
    skip: str = ""                     # x
    branch: str = ""                   # f(x), the other operand of the Add
    body: list = field(default_factory=list)          # nodes of f, in graph order
    zero: list = field(default_factory=list)          # (node, input index) of the constants to zero
    projection: str = ""               # label of the last projection
    kind: str = "residual"             # attention | ffn | conv | residual
    reason: str | None = None          # why it is not removable (None: it is)
    params: int = 0

    @property
    def removable(self) -> bool:
        return self.reason is None

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "removable": self.removable, "reason": self.reason,
                "skip": self.skip or None, "nodes": len(self.body), "params": self.params,
                "projection": self.projection or None}


def block_name(node: onnx.NodeProto) -> str:
    return node.name or node.output[0]


def find_blocks(model: onnx.ModelProto, shapes: dict | None = None) -> list[Block]:
    """Every two-runtime-input Add of the main graph, as a Block (removable or with a reason)."""
    index = GraphIndex.build(model)
    shapes = shapes or {}
    order = {id(n): k for k, n in enumerate(model.graph.node)}
    out = []
    for node in model.graph.node:
        if node.op_type != "Add" or node.domain not in ("", "ai.onnx") or len(node.input) != 2:
            continue
        a, b = node.input
        if not a or not b or index.is_const(a) or index.is_const(b):
            continue  # a bias, not a merge
        try:
            block = _resolve(node, a, b, index, order) or _resolve(node, b, a, index, order)
            if block is None:
                block = Block(block_name(node), node, reason="not residual: neither input of the Add is computed "
                                                              "from the other")
            elif block.reason is None:
                _check(block, index, shapes)
        except Exception as exc:  # a graph this analysis did not foresee: refuse, never crash inspect
            block = Block(block_name(node), node, reason=f"could not analyse it ({type(exc).__name__})")
        out.append(block)
    return out


def _resolve(add, x: str, z: str, index: GraphIndex, order: dict) -> Block | None:
    """The block with skip `x` and branch `z`, or None if `z` does not depend on `x`."""
    ancestors = _ancestors(z, index)
    if x not in ancestors["values"]:
        return None
    below_x = _descendants(x, index)
    body_ids = {id(n) for n in ancestors["nodes"]} & below_x
    body = sorted((n for n in ancestors["nodes"] if id(n) in body_ids), key=lambda n: order[id(n)])
    block = Block(block_name(add), add, skip=x, branch=z, body=body)
    for n in body:
        for o in n.output:
            if not o:
                continue
            if o in index.graph_outputs:
                block.reason = f"value '{o}' inside the block is a graph output (removal would change the interface)"
                return block
            for use in index.consumers(o):
                if id(use.node) not in body_ids and use.node is not add:
                    block.reason = (f"value '{o}' inside the block is also read by {node_label(use.node)} outside it "
                                    f"(removal would break that reader)")
                    return block
    return block


def _ancestors(value: str, index: GraphIndex) -> dict:
    nodes, values, seen = [], {value}, set()
    queue = deque([value])
    while queue:
        v = queue.popleft()
        prod = index.producer.get(v)
        if prod is None or id(prod[0]) in seen:
            continue
        seen.add(id(prod[0]))
        nodes.append(prod[0])
        for i in prod[0].input:
            if i and not index.is_const(i) and i not in values:
                values.add(i)
                queue.append(i)
    return {"nodes": nodes, "values": values}


def _descendants(value: str, index: GraphIndex) -> set[int]:
    ids, queue, seen = set(), deque([value]), {value}
    while queue:
        for use in index.consumers(queue.popleft()):
            if id(use.node) in ids:
                continue
            ids.add(id(use.node))
            for o in use.node.output:
                if o and o not in seen:
                    seen.add(o)
                    queue.append(o)
    return ids


def _check(block: Block, index: GraphIndex, shapes: dict) -> None:
    sx, sy = shapes.get(block.skip), shapes.get(block.add.output[0])
    if sx is None or sy is None:
        block.reason = f"shape of '{block.skip}' or of the Add's output is unknown (give --shape)"
        return
    if tuple(sx) != tuple(sy):
        block.reason = f"the Add broadcasts '{block.skip}' {list(sx)} to {list(sy)}: y = x would change a shape"
        return
    found = _last_projection(block.branch, index, {id(n) for n in block.body})
    if isinstance(found, str):
        block.reason = found
        return
    block.zero, proj = found
    block.projection = node_label(proj)
    ops = {n.op_type for n in block.body}
    block.kind = "attention" if "Softmax" in ops else "conv" if ops & {"Conv", "ConvTranspose"} else \
        "ffn" if sum(n.op_type in ("MatMul", "Gemm") for n in block.body) >= 2 else "residual"
    consts = {i for n in block.body for i in n.input if i and index.is_const(i)}
    shared = {c for c in consts if any(id(u.node) not in {id(n) for n in block.body} for u in index.consumers(c))}
    block.params = sum(int(index.const(c).size) for c in consts - shared
                       if index.const(c) is not None and index.const(c).dtype.kind == "f")


def _last_projection(value: str, index: GraphIndex, body: set[int]):
    """([(node, input index) to zero], projection node), or the reason there is none."""
    zero = []
    while True:
        prod = index.producer.get(value)
        if prod is None or id(prod[0]) not in body:
            return f"no last projection: the branch reaches '{value}' without a Conv/Gemm/MatMul to zero"
        node = prod[0]
        op = node.op_type
        runtime = [k for k, i in enumerate(node.input) if i and not index.is_const(i)]
        if op in PROJECTIONS and node.domain in ("", "ai.onnx"):
            idx = [k for k in PROJECTIONS[op] if k < len(node.input) and node.input[k]]
            if op == "MatMul" and index.is_const(node.input[0]):
                idx = [0]
            if not idx or any(not index.is_const(node.input[k]) for k in idx):
                return f"the last projection {node_label(node)} has a weight computed at run time"
            return zero + [(node, k) for k in idx], node
        if op == "Add" and len(runtime) == 1:  # a bias: zero it too
            zero += [(node, k) for k in range(2) if k not in runtime]
            value = node.input[runtime[0]]
        elif op in ("Mul", "Div") and runtime and runtime[0] == 0:
            if op == "Div" and len(runtime) > 1:
                return f"{node_label(node)} divides by a run-time value: a zero branch may not stay zero"
            value = node.input[0]
        elif op == "Mul" and runtime == [1]:
            value = node.input[1]
        elif op in ZERO_KEEPING and runtime and runtime[0] == 0:
            value = node.input[0]
        else:
            return f"no last projection: the branch ends in {node_label(node)}, which does not keep a zero input zero"
