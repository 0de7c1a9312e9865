"""LSTM, GRU and RNN. Hidden units are sources: unit j owns the rows of every gate block of
`W`, `R`, `B` (and `P` peepholes), the columns of `R` that read h[j] back (consumer slices, so
zeroing them is the reference), and position j of `Y`, `Y_h`, `Y_c`. The two directions of a
bidirectional op need only keep the same *number* of units (one hidden_size): each forward unit
is paired with the backward unit of the same weight-norm rank, and a pair goes together, so each
direction keeps its own best units (its W/R/B rows, R columns and its half of the consumer's
columns are sliced with its own mask). With a run-time initial state or state outputs the
directions share positions (unit j in both), as the state buffer has one hidden axis."""

from __future__ import annotations

import numpy as np
import onnx

from ...core.graph import attr, node_label, set_attr
from ..reasons import Reason
from .base import Handler, LinearView, optional_const, set_or_add
from .registry import register

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def _opt(node, i):
    return node.input[i] if len(node.input) > i and node.input[i] else ""


@register("LSTM", "GRU", "RNN")
class RecurrentHandler(Handler):
    unit = "hidden units"

    def propagate(self, node, ctx):
        x, w, r = node.input[0], node.input[1], node.input[2]
        gates = GATES[node.op_type]
        layout = int(attr(node, "layout", 0))
        weight, recurrence = ctx.const(w), ctx.const(r)
        if weight is None or recurrence is None:
            ctx.block_inputs(node, "weights W/R are computed at run time")
            return
        for axis, labels in ctx.tracked(x).items():
            if axis == 2:
                ctx.param(node, 1, 2, labels, "consumer")
            else:
                what = "time" if axis == (1 if layout else 0) else "batch"
                ctx.block(labels, f"{node_label(node)}: channels sit on the {what} axis of the sequence")
        # sequence_lens holds lengths per batch item, never channels
        ctx.block_all(_opt(node, 4), f"{node_label(node)}: channels reach sequence_lens")
        hidden = recurrence.shape[2]
        born_on = [(k, axis) for k, axis in ((0, 3), (1, 2), (2, 2)) if _opt_out(node, k)]
        if not born_on:
            return
        k, axis = born_on[0]
        if _per_direction(node, ctx):
            self._per_direction(node, ctx, weight, recurrence, gates, hidden)
            ctx.needs_rewrite(node)
            return
        units = ctx.new_source(node, node.output[k], axis, hidden)
        ctx.param(node, 1, 1, np.tile(units, gates), "producer")
        ctx.param(node, 2, 1, np.tile(units, gates), "producer")
        ctx.param(node, 2, 2, units, "consumer")
        if _opt(node, 3):
            ctx.param(node, 3, 1, np.tile(units, 2 * gates), "producer")
        if node.op_type == "LSTM" and _opt(node, 7):
            ctx.param(node, 7, 1, np.tile(units, 3), "channelwise")
        for i in (5, 6):  # initial_h, initial_c: [dirs, batch, H] (layout 1: [batch, dirs, H])
            name = _opt(node, i)
            if not name:
                continue
            if ctx.const(name) is not None:
                ctx.param(node, i, 2, units, "channelwise")
            elif 2 in ctx.tracked(name):
                ctx.couple(units, ctx.tracked(name)[2], node_label(node))
            elif is_zero_state(ctx.index, name):
                pass  # all zeros, the op's default: the rewrite drops the input
            elif name in ctx.index.graph_inputs and ctx.allow_io_change:
                ctx.resize_io(name, 2, units, "input")
            elif name in ctx.index.graph_inputs:
                ctx.block(units, Reason(f"{node_label(node)}: initial state is graph input '{name}' "
                                        f"(the caller's state buffer)", "state-input", node.name))
            else:
                ctx.block(units, f"{node_label(node)}: initial state '{name}' is a run-time tensor that cannot shrink")
        for k, axis in born_on[1:]:
            ctx.set_labels(node.output[k], axis, units)
        ctx.needs_rewrite(node)

    @staticmethod
    def _per_direction(node, ctx, weight, recurrence, gates, hidden):
        """Labels [2, H]: row d labels direction d's units; backward unit j carries the atom of the
        forward unit with the same norm rank, so a class is one unit of each direction."""
        first = next(o for o in node.output if o)
        units = ctx.atoms.new(hidden)
        norms = [_unit_norms(weight[d], recurrence[d], gates, hidden) for d in range(2)]
        order_f, order_b = np.argsort(-norms[0], kind="stable"), np.argsort(-norms[1], kind="stable")
        rows = np.empty((2, hidden), dtype=np.int64)
        rows[0] = units
        rows[1, order_b] = units[order_f]
        from ..context import Source
        ctx.sources.append(Source(node, first, 3, units))
        ctx.param(node, 1, 1, np.tile(rows, (1, gates)), "producer")
        ctx.param(node, 2, 1, np.tile(rows, (1, gates)), "producer")
        ctx.param(node, 2, 2, rows, "consumer")
        if _opt(node, 3):
            ctx.param(node, 3, 1, np.tile(rows, (1, 2 * gates)), "producer")
        if node.op_type == "LSTM" and _opt(node, 7):
            ctx.param(node, 7, 1, np.tile(rows, (1, 3)), "channelwise")
        for i in (5, 6):
            if _opt(node, i) and ctx.const(node.input[i]) is not None:
                ctx.param(node, i, 2, rows, "channelwise")
        if node.output[0]:
            ctx.set_multi(node.output[0], (1, 3), rows)
        for k in (1, 2):
            if _opt_out(node, k):
                ctx.set_multi(node.output[k], (0, 2), rows)

    def rewrite(self, node, ctx):
        kept = _kept_units(node, ctx)
        if kept is not None:
            set_attr(node, "hidden_size", int(kept))
        for i in (5, 6):
            if _opt(node, i) and is_zero_state(ctx.writer.index, node.input[i]) and ctx.const(node.input[i]) is None:
                node.input[i] = ""


_MOVES_DATA = {"Expand", "Unsqueeze", "Squeeze", "Reshape", "Transpose", "Identity", "Cast", "Tile", "Slice",
               "Gather", "Flatten"}  # input 0 is the data; zeros in, zeros out


def is_zero_state(index, name: str, depth: int = 8) -> bool:
    """True for an initial state that is provably all zeros but built at run time: TorchScript's
    Expand(zeros, Concat(..., Gather(Shape(x)), ...)) for the batch size, tf2onnx's Concat of
    Unsqueezed zero tensors for both directions. An absent initial state means zeros, so the
    input can simply be dropped."""
    value = index.const(name)
    if value is not None:
        return not np.any(value)
    producer = index.producer.get(name)
    if producer is None or depth == 0:
        return False
    node = producer[0]
    if node.op_type == "ConstantOfShape":
        value = next((a.t for a in node.attribute if a.name == "value"), None)
        return value is None or not np.any(onnx.numpy_helper.to_array(value))
    if node.op_type == "Concat":
        return all(is_zero_state(index, i, depth - 1) for i in node.input if i)
    if node.op_type in _MOVES_DATA:
        return is_zero_state(index, node.input[0], depth - 1)
    return False


_STATE_PATH = {"Reshape", "Squeeze", "Unsqueeze", "Transpose", "Identity", "Cast", "Flatten"}


def state_inputs(index, shapes: dict) -> list[tuple[str, int]]:
    """(graph input, axis) pairs that reach an LSTM/GRU/RNN initial state through data-movement
    ops only (tf2onnx: state input [B, H] -> Unsqueeze/Reshape -> [1, B, H]). With
    --allow-io-change the analysis gives the input's last axis labels of its own, so they flow
    forward through those ops (their shape constants are rewritten as usual) and meet the
    op's hidden units; the caller's state buffer then shrinks with them."""
    found = []
    for node in index.graph.node:
        if node.op_type not in GATES:
            continue
        recurrence = index.const(node.input[2]) if len(node.input) > 2 else None
        if recurrence is None:
            continue
        for i in (5, 6):
            name = _opt(node, i)
            if not name or index.is_const(name) or name in index.graph_inputs:
                continue
            source = _trace_back(index, name)
            shape = shapes.get(source) if source else None
            if shape and shape[-1] == recurrence.shape[2] and (source, len(shape) - 1) not in found:
                found.append((source, len(shape) - 1))
    for source in unrolled_state_inputs(index, shapes):
        if (source, len(shapes[source]) - 1) not in found:
            found.append((source, len(shapes[source]) - 1))
    return found


def unrolled_state_inputs(index, shapes: dict) -> list[str]:
    """State of an unrolled cell (silero-vad's ifless export: h, c = Gather(state, 0),
    Gather(state, 1) feeding Gemm/Sigmoid/Tanh, and stateN = Concat(h', c') returned): a graph
    input read only by Gather along axis 0 at a constant index (in any branch), with a graph
    output of the same shape fed back by the caller. Its last axis gets labels; whether they
    meet units that can shrink with them is up to the ops they reach (anything else blocks)."""
    outs = {tuple(shapes[o]) for o in index.graph_outputs if shapes.get(o)}
    found = []
    for name in index.graph_inputs:
        shape = shapes.get(name)
        if index.is_const(name) or not shape or len(shape) < 2 or tuple(shape) not in outs:
            continue
        uses = [u for u in index.consumers(name) if u.index >= 0]  # an If's implicit use is its branches' ones
        if uses and all(u.node.op_type == "Gather" and u.index == 0 and int(attr(u.node, "axis", 0)) == 0
                        and index.const(u.node.input[1]) is not None and index.const(u.node.input[1]).ndim == 0
                        for u in uses):
            found.append(name)
    return found


def _trace_back(index, name: str, depth: int = 8) -> str | None:
    for _ in range(depth):
        if name in index.graph_inputs and not index.is_const(name):
            return name
        producer = index.producer.get(name)
        if producer is None or producer[0].op_type not in _STATE_PATH or producer[0].domain not in ("", "ai.onnx"):
            return None
        name = producer[0].input[0]
    return None


def _opt_out(node, k):
    return node.output[k] if len(node.output) > k and node.output[k] else ""


def _per_direction(node, ctx) -> bool:
    """Bidirectional, no run-time initial state, no state output leaving the graph, layout 0."""
    direction = attr(node, "direction", b"forward")
    if (direction.decode() if isinstance(direction, bytes) else direction) != "bidirectional" or int(attr(node, "layout", 0)):
        return False
    if ctx.const(node.input[1]) is None or ctx.const(node.input[1]).shape[0] != 2:
        return False
    for i in (5, 6):
        name = _opt(node, i)
        if name and ctx.const(name) is None and not is_zero_state(ctx.index, name):
            return False
    if any(_opt_out(node, k) and ctx.index.consumers(_opt_out(node, k)) for k in (1, 2)):
        return False
    return _merges_directions(ctx.index, node.output[0]) if node.output[0] else False


def _merges_directions(index, name: str, depth: int = 2) -> bool:
    """Y reaches its readers only through Transpose -> Reshape, which merge the directions into
    one feature axis position by position (as torch exports do); other readers (tf2onnx splits Y
    per direction and squeezes it) see one hidden axis: then both directions share positions."""
    uses = index.consumers(name)
    if not uses or name in index.graph_outputs or depth == 0:
        return False
    for use in uses:
        op = use.node.op_type
        if op == "Reshape" and use.index == 0:
            continue
        if op == "Transpose" and _merges_directions(index, use.node.output[0], depth - 1):
            continue
        return False
    return True


def _unit_norms(w, r, gates, hidden) -> np.ndarray:
    """Squared norm of each unit's rows in every gate block of W and R, and of its R column."""
    w = np.asarray(w, dtype=np.float64).reshape(gates, hidden, -1)
    r = np.asarray(r, dtype=np.float64)
    rows = (w ** 2).sum(axis=(0, 2)) + (r.reshape(gates, hidden, -1) ** 2).sum(axis=(0, 2))
    return rows + (r ** 2).sum(axis=0)


def _kept_units(node, ctx):
    source = next((s for s in ctx.analysis.sources if s.node.op_type == node.op_type and s.output in node.output), None)
    if source is not None:
        return ctx.keep_mask(source.atoms).sum()
    for k, axis in ((0, 3), (1, 2), (2, 2)):
        name = _opt_out(node, k)
        if name:
            mask = ctx.kept(name, axis)
            if mask is not None:
                return mask.sum()
    return None


class RecurrentLinear(LinearView):
    """The input weights W of LSTM/GRU/RNN as one product per time step: W (directions x gate
    rows, inputs), b = Wb. The recurrence R reads the hidden state, no tensor of the graph."""
    kind = "rnn"

    def reads(self, index, p) -> bool:
        return p.node.domain in ("", "ai.onnx") and p.input_index == 1

    def hidden_state_input(self, p) -> bool:
        return p.input_index == 2

    def open(self, node, writer, index):
        w = writer.current(node, 1).astype(np.float64)
        d, gh, _ = w.shape
        bias = optional_const(writer, node, 3, None)
        wb = np.zeros((d, gh)) if bias is None else bias.astype(np.float64)[:, :gh]
        return w.reshape(d * gh, -1), wb.reshape(-1), (d, gh), True

    def write(self, lin, w_new, b_new, new_adds, node_pos):
        node, writer = lin.node, lin.writer
        dtype = writer.current(node, 1).dtype
        d, gh = lin.extra
        writer.set(node, 1, w_new.reshape(d, gh, -1).astype(dtype))
        bias = optional_const(writer, node, 3, None)
        full = np.zeros((d, 2 * gh)) if bias is None else bias.astype(np.float64).copy()
        full[:, :gh] = b_new.reshape(d, gh)
        set_or_add(writer, node, 3, full.astype(dtype), "B")


RecurrentHandler.linear = RecurrentLinear()
