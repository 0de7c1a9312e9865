"""LSTM, GRU and RNN. Hidden units are sources: unit j owns the rows of every gate block of
`W`, `R`, `B` (and `P` peepholes), the columns of `R` that read h[j] back (consumer slices, so
zeroing them is the reference), and position j of `Y`, `Y_h`, `Y_c`. Both directions of a
bidirectional op share one hidden axis in `Y`, so unit j goes in both directions at once."""

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


def _opt_out(node, k):
    return node.output[k] if len(node.output) > k and node.output[k] else ""


def _kept_units(node, ctx):
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
