"""Run every node's handler in graph order and collect the dependency groups."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx

from ..core.graph import GraphIndex, attr, iter_nodes, node_label, outer_scope_names, subgraphs
from ..errors import UsageError
from ..core.fold import fold_constants
from .handlers import handler_for
from ..core.branches import BRANCHES, all_ifs, if_key
from ..core.shapes import input_shapes, probe
from .handlers.quantized import dequantized_const, redirect
from .handlers.recurrent import state_inputs, unrolled_state_inputs
from .atoms import FIXED, Atoms
from .reasons import Reason
from .context import ParamSlice, PropagateContext, Source
from .shape_program import evaluate as evaluate_shapes, static_axes


@dataclass
class Group:
    """Channels that must be removed together. `classes` are union-find roots, one per channel."""

    id: int
    name: str
    sources: list[Source]
    classes: list[int]
    blocked_by: list[str] = field(default_factory=list)
    is_heads: bool = False

    @property
    def size(self) -> int:
        return len(self.classes)

    @property
    def prunable(self) -> bool:
        return not self.blocked_by and self.size > 1

    @property
    def unit(self) -> str:
        """What one channel of this group is, for reports."""
        if self.is_heads:
            return "heads"
        units = {handler_for(s.node).unit for s in self.sources}
        if "hidden units" in units:
            return "hidden units"
        return "neurons" if units == {"neurons"} else "channels"

    def members(self) -> list[str]:
        return sorted({s.node.name or s.output for s in self.sources})


@dataclass
class Analysis:
    model: onnx.ModelProto
    index: GraphIndex
    input_shapes: dict[str, list[int]]
    shapes: dict[str, tuple[int, ...]]
    atoms: Atoms
    dims: dict[str, dict[int, np.ndarray]]
    params: list[ParamSlice]
    sources: list[Source]
    hooks: list[onnx.NodeProto]
    groups: list[Group]
    io: list = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    input_values: dict = field(default_factory=dict)  # --input NAME=VALUE, fed wherever inputs are seeded
    paths: object = None  # core.branches.Paths: the If execution paths verification must cover
    _param_roots: list | None = field(default=None, init=False, repr=False, compare=False)
    _roots_of: object = field(default=None, init=False, repr=False, compare=False)
    program: object = None  # shape_program.ShapeProgram: shapes computed at run time

    def group_of(self) -> dict[int, Group]:
        """Channel class root -> its group."""
        return {root: g for g in self.groups for root in g.classes}

    def params_of(self, group: Group) -> list[tuple[ParamSlice, np.ndarray]]:
        """Each parameter slice touching the group, with its positions' class roots."""
        wanted = np.asarray(group.classes, dtype=np.int64)
        return [(p, roots) for p, roots in zip(self.params, self.param_roots()) if np.isin(roots, wanted).any()]

    def param_roots(self) -> list[np.ndarray]:
        """Class roots of every parameter slice's positions, computed once per analysis."""
        table = self.atoms.table()
        if self._param_roots is None or self._roots_of is not table:
            self._param_roots = [self.atoms.roots(p.labels) for p in self.params]
            self._roots_of = table
        return self._param_roots


def analyze_model(model: onnx.ModelProto, *, shapes: dict[str, list[int]] | None = None,
                  exclude=(), allow_io_change: bool = False, values: dict | None = None) -> Analysis:
    fed = input_shapes(GraphIndex.build(model), shapes or {})
    for name in values or {}:
        if name not in fed:
            raise UsageError(f"--input names '{name}', which is not a model input (inputs: {', '.join(sorted(fed))})")
    model, _ = fold_constants(model)
    index = GraphIndex.build(model, recursive=True)
    value_shapes, paths = probe(model, fed, values)
    ctx = PropagateContext(index=index, shapes=value_shapes, allow_io_change=allow_io_change)
    ctx.program = evaluate_shapes(model, index, value_shapes, static_axes(model) if not paths else set())
    ctx.const_fallback = dequantized_const
    ctx.descend = lambda graph: [_propagate_node(n, ctx) for n in graph.node]
    if allow_io_change:
        _seed_state_inputs(ctx)
    else:
        _block_unrolled_state(ctx)
    for node in model.graph.node:
        _propagate_node(node, ctx)
    _check_dim_reads(ctx)
    _make_multi_axis_rectangular(ctx)
    for out in sorted(index.graph_outputs):
        if allow_io_change:
            for axis, labels in ctx.tracked(out).items():
                ctx.resize_io(out, axis, labels, "output")
        else:
            ctx.block_all(out, Reason(f"reaches graph output '{out}' (the model's interface must not change)",
                                      "interface" if _is_state(index, out) else "fixed-output", out))
    _apply_exclusions(ctx, set(exclude or ()))
    if paths is not None:
        _block_unverifiable_branches(model, ctx, paths)
    groups = _build_groups(ctx)
    _only_state_outputs_resize(ctx, groups)
    notes = [f"{node_label(n)} holds {_count_nodes(n)} nodes in its subgraphs, which are not analysed: "
             f"their channels are not pruned" for n in iter_nodes(model.graph) if subgraphs(n) and n.op_type != "If"]
    if paths is not None:
        notes += _unrun_branch_notes(model, ctx, paths)
    return Analysis(model, index, fed, value_shapes, ctx.atoms, ctx.dims, ctx.params, ctx.sources, ctx.hooks, groups,
                    ctx.io, notes, dict(values or {}), paths, program=ctx.program)


def _is_state(index, name: str) -> bool:
    """Is this output recurrent state (an LSTM/GRU/RNN Y_h or Y_c, through reshapes) the caller
    feeds back? Only those may be resized (`_only_state_outputs_resize`), so only they get the hint."""
    for _ in range(16):
        found = index.producer.get(name)
        if found is None:
            return False
        node, k = found
        if node.op_type in ("LSTM", "GRU", "RNN"):
            return k >= 1
        if node.op_type not in ("Identity", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Cast") or not node.input:
            return False
        name = node.input[0]
    return False


def _count_nodes(node) -> int:
    return sum(len(g.node) + sum(_count_nodes(n) for n in g.node) for g in subgraphs(node))


def _propagate_node(node: onnx.NodeProto, ctx: PropagateContext) -> None:
    if node.op_type != "If":  # If branches are analysed; other subgraphs (Loop, Scan) are not
        for name in sorted(outer_scope_names(node)):
            ctx.block_all(name, Reason(f"{node_label(node)}: read by name inside its {node.op_type} body, which is "
                                       f"not analysed (a body runs a run-time number of times)", "subgraph", node.name))
    handler = handler_for(node)
    if not getattr(handler, "multi_axis", False):
        for name in node.input:
            ctx.resolve_multi(name)
    if handler is None:
        if any(ctx.tracked(n) for n in node.input):
            domain = f"{node.domain}::" if node.domain else ""
            ctx.block_inputs(node, f"no handler for op {domain}{node.op_type}; channels cannot pass through it",
                             "no-handler")
        return
    before = len(ctx.params)
    try:
        handler.propagate(node, ctx)
    except Exception as exc:  # a handler surprised by a graph must block, never crash or guess
        ctx.block_inputs(node, f"handler could not analyse it ({type(exc).__name__}: {str(exc)[:80]})", "handler-error")
        for out in node.output:
            ctx.dims.pop(out, None)
        del ctx.params[before:]
        return
    for k in range(len(ctx.params) - 1, before - 1, -1):
        p = ctx.params[k]
        if ctx.index.is_const(p.tensor):
            continue
        stored, reason = redirect(ctx.index, p)  # an int8 weight behind DequantizeLinear is sliced where stored
        if stored is not None:
            ctx.params[k:k + 1] = stored
            continue
        ctx.block(p.labels, Reason(reason, "blocked", node.name) if reason else
                  Reason(f"{node_label(node)}: parameter '{p.tensor}' is computed at run time", "runtime-value", node.name))


def _seed_state_inputs(ctx: PropagateContext) -> None:
    """Recurrent state fed through Reshape/Squeeze/... : label the graph input's hidden axis so
    the labels reach the LSTM/GRU (which couples them with its units) and the input is resized."""
    for name, axis in state_inputs(ctx.index, ctx.shapes):
        labels = ctx.atoms.new(ctx.shapes[name][axis])
        ctx.set_labels(name, axis, labels)
        ctx.resize_io(name, axis, labels, "input")


def _block_unrolled_state(ctx: PropagateContext) -> None:
    """Without --allow-io-change, an unrolled cell's state input (silero's ifless export) carries
    blocked labels, so the units it meets say why they stay: the caller's state buffer."""
    for name in unrolled_state_inputs(ctx.index, ctx.shapes):
        axis = len(ctx.shapes[name]) - 1
        labels = ctx.atoms.new(ctx.shapes[name][axis])
        ctx.set_labels(name, axis, labels)
        ctx.block(labels, Reason(f"recurrent state read from graph input '{name}' (the caller's state buffer)",
                                 "state-input", name))


def _check_dim_reads(ctx: PropagateContext) -> None:
    """A Shape that read a channel count is exact only if every consumer computing with that
    count accepted it (a Reshape target entry on the same, proportionally shrinking axis)."""
    for node, tensor, axis, labels in ctx.dim_reads:
        for sink, k in ctx.program.sinks.get((tensor, axis), []):
            if sink is not None and (id(sink), k, tensor, axis) in ctx.accepted:
                continue
            where = "a graph output" if sink is None else node_label(sink)
            ctx.block(labels, Reason(f"{node_label(node)}: reads the channel count of axis {axis}, and {where} "
                                     f"computes with it", "blocked", node.name))
            break


def _unrun_branch_notes(model, ctx: PropagateContext, paths) -> list[str]:
    """One note per branch that could not run and holds channel sources; the others (often the
    rank checks an exporter wraps around each layer) are only counted."""
    source_nodes = {id(s.node) for s in ctx.sources}
    notes, quiet = [], 0
    for node, _ in all_ifs(model.graph):
        for branch in BRANCHES:
            error = paths.failed.get((if_key(node), branch))
            if error is None:
                continue
            if any(id(n) in source_nodes for n in iter_nodes(attr(node, branch))):
                notes.append(f"If '{if_key(node)}' {branch} could not run on the seeded inputs ({error[:100]}); "
                             f"its channels are not pruned (give --input/--shape values that select it)")
            else:
                quiet += 1
    if quiet:
        notes.append(f"{quiet} more If branch(es) without channel sources cannot run on these inputs (not pruned)")
    return notes


def _block_unverifiable_branches(model, ctx: PropagateContext, paths) -> None:
    """A branch no seeded path can run cannot be verified: nothing inside it may change."""
    for node, _ in all_ifs(model.graph):
        for branch in BRANCHES:
            if (if_key(node), branch) not in paths.failed:
                continue
            reason = Reason(f"If '{if_key(node)}' {branch} cannot run on the seeded inputs, so it cannot be verified",
                            "unverifiable-branch", if_key(node))
            inside = {id(n) for n in iter_nodes(attr(node, branch))}
            for n in iter_nodes(attr(node, branch)):
                for out in n.output:
                    ctx.block_all(out, reason)
            for p in ctx.params:
                if id(p.node) in inside:
                    ctx.block(p.labels, reason)


def _apply_exclusions(ctx: PropagateContext, exclude: set[str]) -> None:
    if not exclude:
        return
    for s in ctx.sources:
        for name in (s.node.name, s.output):
            if name in exclude:
                ctx.block(s.atoms, Reason(f"excluded by --exclude {name}", "excluded", name))
    for p in ctx.params:
        for name in (p.node.name, p.tensor):
            if name in exclude:
                ctx.block(p.labels, Reason(f"excluded by --exclude {name}", "excluded", name))


def _make_multi_axis_rectangular(ctx: PropagateContext) -> None:
    """A tensor whose channels span several axes must lose whole slabs (whole heads, or the same
    columns of Q, K and V), or it would not stay a rectangle. Where the units do not already line
    up along one axis, unite them along the inner axes."""
    for _ in range(4):
        changed = False
        for name, entries in ctx.dims.items():
            for axes, labels in list(entries.items()):
                if not isinstance(axes, tuple):
                    continue
                roots = ctx.atoms.roots(labels.reshape(-1)).reshape(labels.shape)
                if any(_depends_only_on(roots, k) or _rows_permute(roots, k) for k in range(roots.ndim)):
                    continue
                ctx.unite_rows(name, axes, labels)
                changed = True
        if not changed:
            return


def _rows_permute(array: np.ndarray, axis: int) -> bool:
    """Every slab along `axis` holds the same classes once each, in its own order (the two
    directions of a bidirectional op keep the same number of units): removing a class removes
    one position from every slab, so the tensor stays a rectangle."""
    if array.ndim != 2:
        return False
    rows = np.moveaxis(array, axis, 0)
    first = np.sort(rows[0])
    return len(set(first.tolist())) == len(first) and FIXED not in first and \
        all(np.array_equal(np.sort(r), first) for r in rows[1:])


def _depends_only_on(array: np.ndarray, axis: int) -> bool:
    moved = np.moveaxis(array, axis, 0).reshape(array.shape[axis], -1)
    return bool(np.all(moved == moved[:, :1]))


def _only_state_outputs_resize(ctx: PropagateContext, groups: list[Group]) -> None:
    """--allow-io-change is for recurrent state the caller feeds back (h/c in, hn/cn out). A group
    that reaches outputs but no resized input (e.g. the classifier's logits) stays blocked."""
    if not ctx.io:
        return
    group_of = {root: g for g in groups for root in g.classes}
    kinds: dict[int, set[str]] = {}
    for name, axis, labels, kind in ctx.io:
        for root in set(ctx.atoms.roots(labels).tolist()) - {FIXED}:
            if root in group_of:  # a seeded state input that never met a recurrent op's units: no group
                kinds.setdefault(group_of[root].id, set()).add(kind)
    for g in groups:
        if kinds.get(g.id) == {"output"}:
            outs = sorted({name for name, _, labels, kind in ctx.io if kind == "output"
                           and set(ctx.atoms.roots(labels).tolist()) & set(g.classes)})
            g.blocked_by.append(Reason(f"reaches graph output '{outs[0]}', which is not recurrent state fed back "
                                       f"through a graph input", "not-state", outs[0]))


def _build_groups(ctx: PropagateContext) -> list[Group]:
    atoms = ctx.atoms
    # Sources whose atoms meet in one class belong to one group.
    owner: dict[int, int] = {}
    parent = list(range(len(ctx.sources)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for si, src in enumerate(ctx.sources):
        for a in src.atoms.tolist():
            r = atoms.find(a)
            if r in owner:
                parent[find(si)] = find(owner[r])
            else:
                owner[r] = si
    members: dict[int, list[int]] = {}
    for si in range(len(ctx.sources)):
        members.setdefault(find(si), []).append(si)
    reasons_by_root: dict[int, list[str]] = {}
    for a, reasons in atoms.reasons.items():
        lst = reasons_by_root.setdefault(atoms.find(a), [])
        lst.extend(r for r in reasons if r not in lst)
    head_roots = {atoms.find(a) for a in ctx.head_atoms if a != FIXED}
    groups = []
    for gid, (_, sis) in enumerate(sorted(members.items())):
        srcs = [ctx.sources[i] for i in sis]
        classes = sorted({atoms.find(a) for s in srcs for a in s.atoms.tolist()})
        blocked: list[str] = []
        for r in classes:
            blocked.extend(x for x in reasons_by_root.get(r, []) if x not in blocked)
        first = srcs[0]
        name = first.node.name or first.output
        if len(srcs) > 1:
            name += f" (+{len(srcs) - 1} coupled)"
        groups.append(Group(gid, name, srcs, classes, blocked, is_heads=bool(head_roots & set(classes))))
    return groups


__all__ = ["Analysis", "Group", "analyze_model", "FIXED"]
