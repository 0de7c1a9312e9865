"""Shapes computed at run time, evaluated symbolically.

Exports with dynamic axes build Reshape targets from `Shape -> Gather -> Unsqueeze -> Concat`.
Each entry of such an integer vector is evaluated here once, at the probe shapes, and remembered
as what it is: a constant (the head count 4, head size 16, -1), the size of one tensor axis
scaled by a constant (`embed_dim // num_heads`), or something else computed from tensor sizes
(`T - 1`). Handlers then decide per entry: an entry on a non-channel axis must not depend on a
channel count; an entry on a channel axis must be -1, a constant the rewrite updates, or the
size of a channel axis that shrinks in proportion. A `Shape` that reads a channel count is
allowed only where every value computed from it reaches such an accepting consumer (`sinks`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from ..core.graph import GraphIndex, attr, iter_nodes

MAX_ELEMENTS = 64  # shape vectors are short; larger integer tensors are data
INT_TYPES = {onnx.TensorProto.INT64, onnx.TensorProto.INT32, onnx.TensorProto.INT16, onnx.TensorProto.INT8,
             onnx.TensorProto.UINT8}


@dataclass(frozen=True)
class Entry:
    """One integer of a computed shape. value: at the probe shapes. dim: (tensor, axis) when the
    entry is that axis' size * num // den; deps: every (tensor, axis) size it was computed from."""

    value: int
    dim: tuple | None = None
    num: int = 1
    den: int = 1
    deps: frozenset = frozenset()
    static: bool = False  # computed only from sizes that are fixed whatever the input shapes (64 channels)

    @property
    def const(self) -> bool:
        return not self.deps

    def __str__(self) -> str:
        if self.const:
            return str(self.value)
        if self.dim is not None:
            scale = (f"*{self.num}" if self.num != 1 else "") + (f"/{self.den}" if self.den != 1 else "")
            return f"dim({self.dim[0]}, {self.dim[1]}){scale}"
        return "f(" + ", ".join(f"dim({t}, {a})" for t, a in sorted(self.deps)) + ")"


def _opaque(value, *entries) -> Entry:
    deps = frozenset().union(*(e.deps for e in entries)) if entries else frozenset()
    return Entry(int(value), deps=deps, static=all(e.static or e.const for e in entries))


class ShapeProgram:
    """values: name -> object array of Entry for every integer value the program follows.
    sinks: (tensor, axis) -> [(node, input index)] consumers outside the program that read an
    entry computed from that size (a Reshape target, ConstantOfShape, a graph output ...)."""

    def __init__(self) -> None:
        self.values: dict[str, np.ndarray] = {}
        self.sinks: dict[tuple, list] = {}

    def get(self, name: str) -> np.ndarray | None:
        return self.values.get(name) if name else None

    def concrete(self, name: str) -> np.ndarray | None:
        v = self.get(name)
        return None if v is None else np.vectorize(lambda e: e.value, otypes=[np.int64])(v) if v.size else \
            np.zeros(v.shape, dtype=np.int64)


def static_axes(model: onnx.ModelProto) -> set:
    """(tensor, axis) whose size onnx shape inference fixes with the inputs' symbolic dims left
    symbolic: channel counts, kernel sizes; never batch or time."""
    bare = onnx.ModelProto()
    bare.CopyFrom(model)
    del bare.graph.value_info[:]
    try:
        inferred = onnx.shape_inference.infer_shapes(bare, data_prop=True)
    except Exception:
        return set()
    out = set()
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
            for a, d in enumerate(vi.type.tensor_type.shape.dim):
                if d.HasField("dim_value") and d.dim_value > 0:
                    out.add((vi.name, a))
    for t in model.graph.initializer:
        out.update((t.name, a) for a in range(len(t.dims)))
    return out


def evaluate(model: onnx.ModelProto, index: GraphIndex, shapes: dict, static: set = frozenset()) -> ShapeProgram:
    prog = ShapeProgram()
    for node in iter_nodes(model.graph):
        try:
            outs = _step(node, index, shapes, prog, static)
        except Exception:  # an op the program cannot follow is a sink, never a guess
            outs = None
        if outs:
            for name, arr in zip(node.output, outs):
                if name and arr is not None:
                    if isinstance(arr, Entry):  # numpy returns the element for a scalar index
                        arr, one = np.empty((), dtype=object), arr
                        arr[()] = one
                    prog.values[name] = arr
    _collect_sinks(model, index, prog)
    return prog


def _collect_sinks(model, index: GraphIndex, prog: ShapeProgram) -> None:
    for node in iter_nodes(model.graph):
        produced = node.output and all(o in prog.values for o in node.output if o)
        for k, name in enumerate(node.input):
            arr = prog.get(name)
            if arr is None or (produced and node.op_type in _FOLLOWED):
                continue
            _add_sink(prog, arr, node, k)
    for out in index.graph_outputs:
        arr = prog.get(out)
        if arr is not None:
            _add_sink(prog, arr, None, -1)


def _add_sink(prog, arr, node, k) -> None:
    deps = set()
    for e in arr.reshape(-1):
        deps |= e.deps
    for d in deps:
        prog.sinks.setdefault(d, []).append((node, k))


def _entries(name, index: GraphIndex, prog: ShapeProgram):
    """Entry array of a followed value or of a small integer constant; None otherwise."""
    if not name:
        return None
    arr = prog.get(name)
    if arr is not None:
        return arr
    value = index.const(name)
    if value is None or value.size > MAX_ELEMENTS or value.dtype.kind not in "iu":
        return None
    out = np.empty(value.shape, dtype=object)
    for i, v in enumerate(value.reshape(-1).tolist()):
        out.flat[i] = Entry(int(v))
    return out


def _values(arr) -> np.ndarray:
    out = np.zeros(arr.shape, dtype=np.int64)
    for i, e in enumerate(arr.reshape(-1)):
        out.flat[i] = e.value
    return out


def _arr(entries, shape) -> np.ndarray:
    out = np.empty(len(entries), dtype=object)
    for i, e in enumerate(entries):
        out[i] = e
    return out.reshape(shape)


def _const_ints(name, index, prog):
    arr = _entries(name, index, prog)
    if arr is None or any(not e.const for e in arr.reshape(-1)):
        return None
    return _values(arr)


def _step(node, index: GraphIndex, shapes: dict, prog: ShapeProgram, static=frozenset()):
    op = node.op_type
    if node.domain not in ("", "ai.onnx"):
        return None
    if op == "Shape":
        shape = shapes.get(node.input[0])
        if shape is None:
            return None
        if node.input[0] in prog.values:  # the length of a followed vector: fixed by the program itself
            return [_arr([Entry(int(d)) for d in shape], (len(shape),))]
        rank = len(shape)
        start, end = int(attr(node, "start", 0)), attr(node, "end", None)
        start = max(0, start + rank if start < 0 else start)
        end = rank if end is None else max(0, int(end) + rank if int(end) < 0 else int(end))
        axes = range(start, min(end, rank))
        x = node.input[0]
        return [_arr([Entry(int(shape[a]), dim=(x, a), deps=frozenset({(x, a)}), static=(x, a) in static)
                      for a in axes], (len(axes),))]
    if op == "Size":
        shape = shapes.get(node.input[0])
        if shape is None:
            return None
        return [_arr([Entry(int(np.prod(shape)), deps=frozenset((node.input[0], a) for a in range(len(shape))))], ())]
    if op == "Constant":
        return None  # read through index.const by _entries
    if op == "ConstantOfShape":  # torch's pad-list and repeat helpers: a run of constant integers
        value = attr(node, "value", None)
        fill = onnx.numpy_helper.to_array(value).reshape(-1) if value is not None else np.zeros(1, np.float32)
        dims = _const_ints(node.input[0], index, prog)
        if dims is None or fill.dtype.kind not in "iu" or int(np.prod(dims)) > MAX_ELEMENTS:
            return None
        return [_arr([Entry(int(fill[0]))] * int(np.prod(dims)), tuple(int(d) for d in dims))]
    if not node.input:
        return None
    ins = [_entries(n, index, prog) for n in node.input]
    if op in ("Identity", "Cast"):
        if ins[0] is None or (op == "Cast" and int(attr(node, "to")) not in INT_TYPES):
            return None
        return [ins[0]]
    if ins[0] is None:
        return None
    x = ins[0]
    if op in ("Unsqueeze", "Squeeze", "Reshape", "Flatten"):
        out_shape = shapes.get(node.output[0])
        if out_shape is None:
            return None
        return [x.reshape(out_shape)]
    if op == "Gather":
        idx = _const_ints(node.input[1], index, prog) if ins[1] is not None else None
        if idx is None or x.ndim != 1 or int(attr(node, "axis", 0)) != 0:
            return None
        return [x[idx % len(x)]]
    if op == "Concat":
        if any(i is None for i in ins) or int(attr(node, "axis", 0)) not in (0, -1):
            return None
        return [np.concatenate([i.reshape(-1) for i in ins])]
    if op == "Slice":
        bounds = [_const_ints(n, index, prog) if n else None for n in list(node.input[1:5]) + [""] * (5 - len(node.input))]
        if bounds[0] is None or bounds[1] is None or any(node.input[k] and bounds[k - 1] is None
                                                         for k in range(3, min(5, len(node.input)))):
            return None
        starts, ends = bounds[0].reshape(-1), bounds[1].reshape(-1)
        axes = bounds[2].reshape(-1) if bounds[2] is not None else np.arange(len(starts))
        steps = bounds[3].reshape(-1) if bounds[3] is not None else np.ones(len(starts), dtype=np.int64)
        index_ = [slice(None)] * x.ndim
        for a, start, end, step in zip(axes.tolist(), starts.tolist(), ends.tolist(), steps.tolist()):
            n = x.shape[int(a)]
            start, end = max(-n - 1, min(start, n)), max(-n - 1, min(end, n))  # int64 extremes mean "to the end"
            if step < 0:
                start = n - 1 if start >= n else start
                end = None if end < -n else end
            index_[int(a)] = slice(start, end, step)
        return [x[tuple(index_)]]
    if op == "Transpose":
        perm = attr(node, "perm", None)
        return [np.transpose(x, None if perm is None else list(perm))]
    if op in ("Mul", "Div", "Add", "Sub"):
        if len(ins) != 2 or ins[1] is None:
            return None
        a, b = np.broadcast_arrays(ins[0], ins[1])
        return [_arr([_arith(op, p, q) for p, q in zip(a.reshape(-1), b.reshape(-1))], a.shape)]
    if op in ("Equal", "Where", "Max", "Min", "Less", "Greater", "Not", "Neg", "Abs", "Mod"):
        if any(i is None for i in ins):
            return None
        vals = [_values(i) for i in ins]
        result = np.asarray(_NUMPY[op](*vals))
        if result.size > MAX_ELEMENTS:
            return None
        b = np.broadcast_arrays(*ins)
        return [_arr([_opaque(v, *(arr.reshape(-1)[i] for arr in b)) for i, v in enumerate(result.reshape(-1).tolist())],
                     result.shape)]
    return None


_NUMPY = {"Equal": np.equal, "Where": np.where, "Max": np.maximum, "Min": np.minimum, "Less": np.less,
          "Greater": np.greater, "Not": np.logical_not, "Neg": np.negative, "Abs": np.abs, "Mod": np.mod}
_FOLLOWED = {"Identity", "Cast", "Unsqueeze", "Squeeze", "Reshape", "Flatten", "Gather", "Concat", "Slice", "Transpose",
             "Shape", "ConstantOfShape",
             "Mul", "Div", "Add", "Sub", *_NUMPY}


def _arith(op, p: Entry, q: Entry) -> Entry:
    value = {"Mul": p.value * q.value, "Add": p.value + q.value, "Sub": p.value - q.value,
             "Div": int(np.trunc(p.value / q.value)) if q.value else 0}[op]
    if p.const and q.const:
        return Entry(value)
    if op == "Mul" and (p.const or q.const):
        d, c = (q, p) if p.const else (p, q)
        if d.dim is not None and c.value > 0:
            return Entry(value, d.dim, d.num * c.value, d.den, d.deps, d.static)
    if op == "Div" and q.const and p.dim is not None and q.value > 0 and p.value % q.value == 0:
        return Entry(value, p.dim, p.num, p.den * q.value, p.deps, p.static)
    return _opaque(value, p, q)


def proportional(ctx, dim_labels, out_labels: np.ndarray, axis_pos: int, num: int, den: int) -> bool:
    """After any removal, is the kept count along `axis_pos` of the output entry equal to the
    kept count of the read axis * num / den? With each slab of the output along that axis made
    one unit, it is when every unit fills den/num times as many read positions as slabs."""
    roots = ctx.atoms.roots(np.asarray(out_labels))
    moved = np.moveaxis(roots, axis_pos, 0).reshape(roots.shape[axis_pos], -1)
    slabs: dict[int, int] = {}
    for row in moved:
        if np.any(row < 0):
            return False
        slabs[int(row[0])] = slabs.get(int(row[0]), 0) + 1  # the row becomes one unit: its first root
    unit = {int(r): int(row[0]) for row in moved for r in row.tolist()}
    counts: dict[int, int] = {}
    for r in ctx.atoms.roots(np.asarray(dim_labels)).reshape(-1).tolist():
        if r not in unit:
            return False
        counts[unit[r]] = counts.get(unit[r], 0) + 1
    return all(counts.get(u, 0) * num == n * den for u, n in slabs.items()) and set(counts) <= set(slabs)
