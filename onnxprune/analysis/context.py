"""What a handler sees while channels flow through its node, and while the graph is rewritten."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx

from ..core.graph import GraphIndex, node_label
from .atoms import FIXED, Atoms
from .reasons import Reason, as_reason


@dataclass
class Source:
    """Channels born at one node output (a Conv's out-channels, a Gemm's columns)."""

    node: onnx.NodeProto
    output: str
    axis: int
    atoms: np.ndarray


@dataclass
class ParamSlice:
    """A constant input whose `axis` is indexed by channel labels.

    role: 'producer' (the rows that compute a channel), 'consumer' (the columns that read it:
    zeroed in the reference model), 'channelwise' (per-channel parameters along the way).
    """

    node: onnx.NodeProto
    input_index: int
    axis: int
    labels: np.ndarray
    role: str
    tag: str = ""

    @property
    def tensor(self) -> str:
        return self.node.input[self.input_index]

    @property
    def per_row(self) -> bool:
        """labels[d] indexes `axis` of value[d] (a bidirectional op's two directions keep
        different units, the same number of each)."""
        return self.labels.ndim == 2


@dataclass
class PropagateContext:
    index: GraphIndex
    shapes: dict[str, tuple[int, ...]]
    atoms: Atoms = field(default_factory=Atoms)
    dims: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)
    params: list[ParamSlice] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    hooks: list[onnx.NodeProto] = field(default_factory=list)  # nodes whose handler rewrites attributes
    allow_io_change: bool = False
    head_atoms: set = field(default_factory=set)  # atoms united into per-head units
    io: list[tuple[str, int, np.ndarray, str]] = field(default_factory=list)  # resized graph inputs/outputs
    descend: object = None  # callable(graph): propagate through a subgraph's nodes (set by the analysis)
    const_fallback: object = None  # callable(index, name): a weight stored quantized (DequantizeLinear of constants)
    program: object = None  # shape_program.ShapeProgram: integer vectors computed from tensor sizes
    dim_reads: list = field(default_factory=list)  # (node, tensor, axis, labels): a Shape read a channel count
    accepted: set = field(default_factory=set)  # (id(node), input index, tensor, axis): a sink that stays exact

    # ---- reading -----------------------------------------------------------------------------
    def tracked(self, name: str) -> dict[int, np.ndarray]:
        """Channel axes of `name`: axis -> one label per position."""
        return {a: v for a, v in self.dims.get(name, {}).items() if isinstance(a, int)} if name else {}

    def tracked_multi(self, name: str) -> dict[tuple, np.ndarray]:
        """Channels spread over several axes (a Reshape split C into heads x head_dim, or a packed
        Q/K/V projection into 3 x C): axes tuple -> label array with one dimension per axis."""
        return {a: v for a, v in self.dims.get(name, {}).items() if isinstance(a, tuple)} if name else {}

    def set_multi(self, name: str, axes: tuple, labels: np.ndarray) -> None:
        labels = np.asarray(labels, dtype=np.int64)
        if len(axes) == 1:
            self.set_labels(name, axes[0], labels.reshape(-1))
            return
        existing = self.dims.setdefault(name, {})
        if axes in existing:
            self.couple(existing[axes].reshape(-1), labels.reshape(-1), f"{name} axes {axes}")
        else:
            existing[axes] = labels

    def resolve_multi(self, name: str) -> None:
        """Make each index of the first axis one unit (a head): unite the labels along the other
        axes and keep one label per index. Always safe: it only makes units coarser."""
        for axes, labels in self.tracked_multi(name).items():
            rows = self.unite_rows(name, axes, labels)
            del self.dims[name][axes]
            self.set_labels(name, axes[0], rows[:, 0])

    def unite_rows(self, name: str, axes: tuple, labels: np.ndarray) -> np.ndarray:
        """Unite all labels that share an index of the first axis; returns them as rows."""
        rows = labels.reshape(labels.shape[0], -1)
        for row in rows:
            self.couple(np.full(len(row), row[0]), row, f"{name}: one unit per index of axis {axes[0]}")
            if len(row) > 1:
                self.head_atoms.add(int(row[0]))
        return rows

    def shape(self, name: str) -> tuple[int, ...] | None:
        return self.shapes.get(name)

    def rank(self, name: str) -> int | None:
        s = self.shapes.get(name)
        return None if s is None else len(s)

    def const(self, name: str):
        if not name:
            return None
        value = self.index.const(name)
        return value if value is not None or self.const_fallback is None else self.const_fallback(self.index, name)

    # ---- writing -----------------------------------------------------------------------------
    def new_source(self, node: onnx.NodeProto, output: str, axis: int, n: int) -> np.ndarray:
        atoms = self.atoms.new(n)
        self.sources.append(Source(node, output, axis, atoms))
        self.set_labels(output, axis, atoms)
        return atoms

    def set_labels(self, name: str, axis: int, labels: np.ndarray) -> None:
        labels = np.asarray(labels, dtype=np.int64)
        if np.all(labels == FIXED):
            return
        existing = self.dims.setdefault(name, {})
        if axis in existing:
            self.couple(existing[axis], labels, f"{name} axis {axis}")
        else:
            existing[axis] = labels

    def param(self, node, input_index: int, axis: int, labels, role: str, tag: str = "") -> None:
        self.params.append(ParamSlice(node, input_index, axis, np.asarray(labels, dtype=np.int64), role, tag))

    def couple(self, a: np.ndarray, b: np.ndarray, where: str) -> None:
        """Positions i of `a` and `b` must be removed together (e.g. both operands of an Add)."""
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            self.block(np.concatenate([a, b]), f"{where}: channel counts {len(a)} and {len(b)} differ")
            return
        for x, y in zip(a.tolist(), b.tolist()):
            if x == FIXED and y == FIXED:
                continue
            if x == FIXED or y == FIXED:
                self.atoms.block([x, y], f"{where}: combined with channels that cannot be removed")
            else:
                self.atoms.union(x, y)

    def block(self, labels, reason: str) -> None:
        self.atoms.block(labels, as_reason(reason))

    def block_all(self, name: str, reason: str) -> None:
        for labels in (self.dims.get(name, {}) if name else {}).values():
            self.block(labels.reshape(-1), reason)

    def block_inputs(self, node: onnx.NodeProto, reason: str, code: str | None = None) -> None:
        code = code or getattr(reason, "code", "blocked")
        for name in node.input:
            self.block_all(name, Reason(f"{node_label(node)}: {reason}", code, node.name))

    def passthrough(self, node: onnx.NodeProto, src: str, dst: str, axis_map=None) -> None:
        """Channels on `src` reappear on `dst` at the same (or mapped) axis."""
        for axis, labels in self.tracked(src).items():
            out_axis = axis if axis_map is None else axis_map(axis)
            if out_axis is None:
                self.block(labels, Reason(f"{node_label(node)}: mixes the channel axis {axis}", "mixes-channels", node.name))
            else:
                self.set_labels(dst, out_axis, labels)

    def computed(self, name: str):
        """Entries of an integer vector computed from tensor sizes (see shape_program), or None."""
        return None if self.program is None else self.program.get(name)

    def accept(self, node: onnx.NodeProto, input_index: int, dim: tuple) -> None:
        """This input of `node` reads the size of a channel axis and stays exact when it shrinks."""
        self.accepted.add((id(node), input_index) + tuple(dim))

    def resize_io(self, name: str, axis: int, labels, kind: str) -> None:
        """A graph input/output whose `axis` shrinks with these channels (only with --allow-io-change)."""
        self.io.append((name, axis, np.asarray(labels, dtype=np.int64), kind))

    def needs_rewrite(self, node: onnx.NodeProto) -> None:
        if all(n is not node for n in self.hooks):
            self.hooks.append(node)


class RewriteContext:
    """Given removed channel classes, answers which positions of a labelled axis survive."""

    def __init__(self, analysis, removed: set[int], writer) -> None:
        self.analysis = analysis
        self.removed = removed
        self.writer = writer
        self.index = analysis.index

    def keep_mask(self, labels: np.ndarray) -> np.ndarray:
        roots = self.analysis.atoms.roots(labels)
        flat = [r == FIXED or r not in self.removed for r in roots.reshape(-1).tolist()]
        return np.array(flat, dtype=bool).reshape(roots.shape)

    def kept(self, name: str, axis: int) -> np.ndarray | None:
        """Kept positions along `axis` of `name` (also when the axis is part of a multi-axis entry)."""
        entries = self.analysis.dims.get(name, {})
        if axis in entries:
            return self.keep_mask(entries[axis])
        for axes, labels in entries.items():
            if isinstance(axes, tuple) and axis in axes:
                keep = self.keep_mask(labels.reshape(-1)).reshape(labels.shape)
                k = axes.index(axis)
                slabs = np.moveaxis(keep, k, -1).reshape(-1, labels.shape[k])
                if len(slabs) > 1 and len({int(s.sum()) for s in slabs}) == 1 and \
                        not all(np.array_equal(s, slabs[0]) for s in slabs):
                    return slabs[0]  # permuted rows (per-direction units): each keeps the same count
                return np.moveaxis(keep, k, 0).reshape(labels.shape[k], -1).any(axis=1)
        return None

    def tracked_axes(self, name: str) -> list[int]:
        axes = []
        for key in self.analysis.dims.get(name, {}):
            axes.extend(key if isinstance(key, tuple) else (key,))
        return sorted(set(axes))

    def rank(self, name: str) -> int | None:
        s = self.analysis.shapes.get(name)
        return None if s is None else len(s)

    def const(self, name: str):
        """The original value of a constant (before this rewrite)."""
        return self.writer.index.const(name) if name else None

    def value(self, node: onnx.NodeProto, input_index: int):
        return self.writer.current(node, input_index)

    def set_value(self, node: onnx.NodeProto, input_index: int, array) -> None:
        self.writer.set(node, input_index, np.asarray(array))
