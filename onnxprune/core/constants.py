"""New values for a model's constants, written so that no other reader of a shared constant sees them."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import onnx
from onnx import numpy_helper

from . import external
from .graph import GraphIndex, iter_nodes, subgraphs


class ConstantWriter:
    """Collects new values for constant node inputs and writes them back safely.

    A constant read by several nodes is rewritten in place only if every reader wants a new
    value (the first one; readers wanting another value get their own copy) and it is not a
    graph output; otherwise the readers that changed get copies, so a shared initializer (or
    one also read inside a subgraph, or returned by the graph) is never corrupted for its
    other users.
    """

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.index = GraphIndex.build(model, recursive=True)
        self.values: dict[tuple[int, int], tuple[onnx.NodeProto, np.ndarray]] = {}
        self.on_disk = external.has_external(model)  # its big weights stay on disk: so do new ones
        self.added: list[tuple[onnx.NodeProto, int, np.ndarray, str]] = []
        self.offsets: list[tuple[onnx.NodeProto, int, np.ndarray, str]] = []
        self.entries: list[tuple] = []

    def current(self, node, i: int) -> np.ndarray:
        key = (id(node), i)
        return self.values[key][1] if key in self.values else self.index.const(node.input[i])

    def set(self, node, i: int, array: np.ndarray) -> None:
        if self.on_disk and array.nbytes >= external.LAZY_BYTES:
            array = external.spill(array)  # values wait here until commit: on disk, not a model's worth in memory
        self.values[(id(node), i)] = (node, array)

    def add_input(self, node, i: int, array: np.ndarray, name: str) -> None:
        self.added.append((node, i, array, name))

    def offset_input(self, node, i: int, delta: np.ndarray, name: str, scale=None) -> None:
        """Feed input i of `node` through `Add(value, delta)`: a computed shape whose constant
        entries change for this node only (the value may be shared with other nodes). scale:
        (num, den) integer vectors applied first, `value * num / den` (heads folded into the batch
        axis: `B * 4` becomes `B * 2` whatever B is at run time)."""
        self.offsets.append((node, i, delta, name, scale))

    def size_entry(self, node, i: int, j: int, length: int, tensor: str, axis: int, divisor: int, multiplier: int,
                   name: str) -> None:
        """Entry j of the computed shape (`length` entries) read by input i of `node` becomes
        `dim(tensor, axis) // divisor * multiplier`, recomputed at run time (heads folded into the
        batch axis: the batch is `B*H' // H'`, the folded size `B*H' // H' * H'`)."""
        self.entries.append((node, i, j, length, tensor, axis, divisor, multiplier, name))

    def commit(self) -> None:
        taken = set(self.index.producer) | set(self.index.initializers) | set(self.index.graph_inputs)
        self._commit_offsets(taken)
        self._commit_entries(taken)
        by_name: dict[str, list[tuple[onnx.NodeProto, int, np.ndarray]]] = defaultdict(list)
        for (_, i), (node, array) in self.values.items():
            by_name[node.input[i]].append((node, i, array))
        for name, changes in by_name.items():
            original = self.index.const(name)
            changes = [c for c in changes if not _same(c[2], original)]
            if not changes:
                continue
            # an If's implicit use is its branches' explicit ones, already counted
            n_users = sum(1 for u in self.index.consumers(name) if u.index >= 0 or u.node.op_type != "If")
            first = changes[0][2]
            if len(changes) == n_users and name not in self.index.graph_outputs:
                # No reader needs the original: the first new value takes its place (an IR<4
                # graph input keeps its name, no dead original is left); other values get copies.
                self._write_in_place(name, first)
                changes = [c for c in changes if not _same(c[2], first)]
            copies: list[tuple[np.ndarray, str]] = []
            for node, i, array in changes:
                match = next((nm for arr, nm in copies if _same(arr, array)), None)
                if match is None:
                    match = _unique(f"{name}_pruned", taken)
                    self._add_initializer(self._tensor(array.astype(original.dtype, copy=False), match))
                    copies.append((array, match))
                node.input[i] = match
        for node, i, array, name in self.added:
            name = _unique(name, taken)
            self._add_initializer(self._tensor(array, name))
            while len(node.input) <= i:
                node.input.append("")
            node.input[i] = name

    def _commit_offsets(self, taken: set[str]) -> None:
        for node, i, delta, name, scale in self.offsets:
            new = []
            value = node.input[i]
            if scale is not None:
                for op, vec in zip(("Mul", "Div"), scale):
                    const, out = _unique(f"{name}_{op.lower()}", taken), _unique(f"{name}_{op.lower()}ed", taken)
                    self._add_initializer(self._tensor(np.asarray(vec, dtype=np.int64), const))
                    new.append(onnx.helper.make_node(op, [value, const], [out], name=_unique(f"{name}_{op.lower()}_node", taken)))
                    value = out
            if np.any(delta):
                const, out = _unique(f"{name}_delta", taken), _unique(name, taken)
                self._add_initializer(self._tensor(delta, const))
                new.append(onnx.helper.make_node("Add", [value, const], [out], name=_unique(f"{name}_add", taken)))
                value = out
            graph = _graph_holding(self.model.graph, node)
            position = next(k for k, n in enumerate(graph.node) if n is node)
            for k, added in enumerate(new):
                graph.node.insert(position + k, added)
            node.input[i] = value

    def _commit_entries(self, taken: set[str]) -> None:
        for node, i, j, length, tensor, axis, divisor, multiplier, name in self.entries:
            consts = {}
            for key, value in (("axis", [axis]), ("divisor", [divisor]), ("multiplier", [multiplier])):
                consts[key] = _unique(f"{name}_{key}", taken)
                self._add_initializer(self._tensor(np.asarray(value, dtype=np.int64), consts[key]))
            mask, onehot = np.ones(length, dtype=np.int64), np.zeros(length, dtype=np.int64)
            mask[j], onehot[j] = 0, 1
            for key, value in (("mask", mask), ("onehot", onehot)):
                consts[key] = _unique(f"{name}_{key}", taken)
                self._add_initializer(self._tensor(value, consts[key]))
            out = {k: _unique(f"{name}_{k}", taken) for k in ("shape", "dim", "batch", "size", "entry", "rest", "target")}
            make = onnx.helper.make_node
            new = [make("Shape", [tensor], [out["shape"]], name=_unique(f"{name}_shape_node", taken)),
                   make("Gather", [out["shape"], consts["axis"]], [out["dim"]], axis=0, name=_unique(f"{name}_gather", taken)),
                   make("Div", [out["dim"], consts["divisor"]], [out["batch"]], name=_unique(f"{name}_div", taken)),
                   make("Mul", [out["batch"], consts["multiplier"]], [out["size"]], name=_unique(f"{name}_mul", taken)),
                   make("Mul", [out["size"], consts["onehot"]], [out["entry"]], name=_unique(f"{name}_place", taken)),
                   make("Mul", [node.input[i], consts["mask"]], [out["rest"]], name=_unique(f"{name}_keep", taken)),
                   make("Add", [out["rest"], out["entry"]], [out["target"]], name=_unique(f"{name}_add", taken))]
            graph = _graph_holding(self.model.graph, node)
            position = next(k for k, m in enumerate(graph.node) if m is node)
            for k, added in enumerate(new):
                graph.node.insert(position + k, added)
            node.input[i] = out["target"]

    def _tensor(self, array: np.ndarray, name: str) -> onnx.TensorProto:
        return external.make_tensor(array, name, on_disk=self.on_disk)

    def _add_initializer(self, tensor: onnx.TensorProto) -> None:
        self.model.graph.initializer.append(tensor)
        if self.model.ir_version < 4:  # IR<4: every initializer must also be declared as a graph input
            self.model.graph.input.append(
                onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))

    def _write_in_place(self, name: str, array: np.ndarray) -> None:
        if name in self.index.initializers:
            tensor = self.index.initializers[name]
            dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
            tensor.CopyFrom(self._tensor(array.astype(dtype, copy=False), name))
            if name in self.index.graph_inputs:  # IR<4: the weight is also declared as an input
                shape = self.index.graph_inputs[name].type.tensor_type.shape
                del shape.dim[:]
                for d in array.shape:
                    shape.dim.add().dim_value = d
            return
        node = self.index.const_nodes[name]
        dtype = self.index.const(name).dtype
        del node.attribute[:]
        node.attribute.append(onnx.helper.make_attribute("value", numpy_helper.from_array(array.astype(dtype, copy=False))))


def _graph_holding(graph: onnx.GraphProto, node: onnx.NodeProto) -> onnx.GraphProto:
    if any(n is node for n in graph.node):
        return graph
    for n in iter_nodes(graph):
        for sub in subgraphs(n):
            if any(m is node for m in sub.node):
                return sub
    raise ValueError(f"node {node.name} not found")


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(a, b)


def _unique(base: str, taken: set[str]) -> str:
    name, k = base, 1
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name
