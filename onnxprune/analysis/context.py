"""What a handler sees while channels flow through its node, and while the graph is rewritten."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx

from ..graph import GraphIndex, node_label
from .atoms import FIXED, Atoms


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
    io: list[tuple[str, int, np.ndarray, str]] = field(default_factory=list)  # resized graph inputs/outputs

    # ---- reading -----------------------------------------------------------------------------
    def tracked(self, name: str) -> dict[int, np.ndarray]:
        return self.dims.get(name, {}) if name else {}

    def shape(self, name: str) -> tuple[int, ...] | None:
        return self.shapes.get(name)

    def rank(self, name: str) -> int | None:
        s = self.shapes.get(name)
        return None if s is None else len(s)

    def const(self, name: str):
        return self.index.const(name) if name else None

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
        self.atoms.block(labels, reason)

    def block_all(self, name: str, reason: str) -> None:
        for labels in self.tracked(name).values():
            self.block(labels, reason)

    def block_inputs(self, node: onnx.NodeProto, reason: str) -> None:
        for name in node.input:
            self.block_all(name, f"{node_label(node)}: {reason}")

    def passthrough(self, node: onnx.NodeProto, src: str, dst: str, axis_map=None) -> None:
        """Channels on `src` reappear on `dst` at the same (or mapped) axis."""
        for axis, labels in self.tracked(src).items():
            out_axis = axis if axis_map is None else axis_map(axis)
            if out_axis is None:
                self.block(labels, f"{node_label(node)}: mixes the channel axis {axis}")
            else:
                self.set_labels(dst, out_axis, labels)

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
        return np.array([r == FIXED or r not in self.removed for r in roots.tolist()], dtype=bool)

    def kept(self, name: str, axis: int) -> np.ndarray | None:
        labels = self.analysis.dims.get(name, {}).get(axis)
        return None if labels is None else self.keep_mask(labels)

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
