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
    def operands(self, node) -> list[str]:
        """The inputs that broadcast together ('' for the others, kept in place for the index)."""
        return list(node.input)

    def propagate(self, node, ctx):
        inputs = self.operands(node)
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
                elif (scaled := _scaled_constant(ctx, name, axis, len(first))) is not None:
                    ctx.param(*scaled, axis, first, "channelwise")
                else:
                    source = _graph_input_behind(ctx, name)
                    why = f" (it carries graph input '{source}', the model's interface)" if source else ""
                    ctx.block(first, f"{node_label(node)}: operand '{name}' cannot shrink along the channel axis{why}")
                    ok = False
            if ok:
                ctx.set_labels(out, out_axis, first)


def _scaled_constant(ctx, name: str, axis: int, n: int):
    """(node, input index) when run-time `name` is a constant vector times a run-time scalar
    (quantize_dynamic's per-column scale, `x_scale * w_scale`): the constant is sliced there."""
    found = ctx.index.producer.get(name)
    if found is None or found[0].op_type not in ("Mul", "Div") or len(found[0].input) != 2:
        return None
    node = found[0]
    shape = ctx.shape(name)
    if len(ctx.index.consumers(name)) != 1:  # another reader would see the sliced vector too
        return None
    for k, other in ((0, 1), (1, 0)):
        value, rest = ctx.const(node.input[k]), ctx.shape(node.input[other])
        if value is not None and value.shape == tuple(shape) and value.shape[axis] == n and rest is not None \
                and all(d == 1 for d in rest) and ctx.const(node.input[other]) is None \
                and not ctx.tracked(node.input[other]) and (node.op_type == "Mul" or k == 0):
            return node, k
    return None


@register("QLinearAdd", "QLinearMul", domain="com.microsoft")
class QLinearBinaryHandler(BroadcastHandler):
    """A, A_scale, A_zp, B, B_scale, B_zp, C_scale, C_zp with per-tensor scales: as Add/Mul on A and B."""

    def operands(self, node) -> list[str]:
        return [n if k in (0, 3) else "" for k, n in enumerate(node.input)]


@register("QLinearSigmoid", "QLinearLeakyRelu", domain="com.microsoft")
class QLinearUnaryHandler(Handler):
    def propagate(self, node, ctx):
        ctx.passthrough(node, node.input[0], node.output[0])


_CARRIES = {*UNARY, *BROADCAST, "Concat", "Slice", "Split", "Transpose", "Reshape", "Squeeze", "Unsqueeze", "Pad",
            "Flatten", "Expand", "Tile", "LayerNormalization"}


def _graph_input_behind(ctx, name: str, limit: int = 64) -> str | None:
    """The graph input whose values reach `name` through ops that carry channels position by
    position (no Conv/MatMul in between), if any: why an operand has no channels that can shrink."""
    seen, todo = set(), [name]
    while todo and len(seen) < limit:
        cur = todo.pop()
        if cur in seen or not cur or ctx.index.is_const(cur):
            continue
        seen.add(cur)
        if cur in ctx.index.graph_inputs:
            return cur
        found = ctx.index.producer.get(cur)
        if found is not None and found[0].op_type in _CARRIES and found[0].domain in ("", "ai.onnx"):
            todo.extend(found[0].input[:1] if found[0].op_type in ("LayerNormalization", "Reshape", "Expand", "Tile",
                                                                   "Slice", "Pad") else found[0].input)
    return None
