"""Element-wise ops. Unary ops carry every channel axis through. Broadcasting ops couple the
channel axes of their operands: a constant operand that varies along the axis is sliced with
it (per-channel bias, scale, PRelu slope), a run-time operand must shrink with it (residual
Add), and a size-1 axis simply broadcasts."""

from __future__ import annotations

from ...core.graph import node_label
from .base import Handler
from .registry import register

UNARY = (
    "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Elu", "Selu", "Celu", "HardSigmoid", "HardSwish",
    "Softplus", "Softsign", "ThresholdedRelu", "Gelu", "Mish", "Exp", "Log", "Abs", "Neg", "Sqrt",
    "Reciprocal", "Erf", "Sin", "Cos", "Tan", "Floor", "Ceil", "Round", "Sign", "Not", "IsNaN", "IsInf",
    "Identity", "Cast", "Dropout", "Shrink", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh",
)
BROADCAST = (
    "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "PRelu", "Clip", "Where", "Mod",
    "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "And", "Or", "Xor", "BitShift",
)


@register(*UNARY)
class UnaryHandler(Handler):
    multi_axis = True

    def propagate(self, node, ctx):
        for out in node.output:  # Dropout's mask has the data's shape too
            if out:
                ctx.passthrough(node, node.input[0], out)
                for axes, labels in ctx.tracked_multi(node.input[0]).items():
                    ctx.set_multi(out, axes, labels)


@register(*BROADCAST)
class BroadcastHandler(Handler):
    def propagate(self, node, ctx):
        inputs = [n for n in node.input]
        out = node.output[0]
        out_rank = ctx.rank(out)
        if out_rank is None:
            ctx.block_inputs(node, "output rank unknown")
            return
        ranks = {n: ctx.rank(n) for n in inputs if n}
        # Collect, per output axis, the labels arriving on it.
        arriving: dict[int, list] = {}
        for k, name in enumerate(inputs):
            for axis, labels in ctx.tracked(name).items():
                arriving.setdefault(axis + out_rank - ranks[name], []).append(labels)
        out_shape = ctx.shape(out)
        for out_axis, label_sets in arriving.items():
            # A tracked operand of size 1 along the axis broadcasts; the output's positions are
            # those of an operand that spans the whole axis (if none does, nothing is carried).
            full = [labels for labels in label_sets if len(labels) == out_shape[out_axis]]
            if not full:
                continue
            first = full[0]
            ok = True
            for k, name in enumerate(inputs):
                if not name:
                    continue
                axis = out_axis - (out_rank - ranks[name])
                shape = ctx.shape(name)
                if axis < 0 or shape[axis] == 1:
                    continue  # broadcasts along the channel axis
                if axis in ctx.tracked(name):
                    ctx.couple(first, ctx.tracked(name)[axis], node_label(node))
                elif ctx.const(name) is not None:
                    ctx.param(node, k, axis, first, "channelwise")
                else:
                    ctx.block(first, f"{node_label(node)}: operand '{name}' cannot shrink along the channel axis")
                    ok = False
            if ok:
                ctx.set_labels(out, out_axis, first)
