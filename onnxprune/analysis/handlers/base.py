"""The handler interface. One small class per op family knows, for its ops:
(a) where a channel axis on an input goes (an output axis, a weight slice, or nowhere: block),
(b) which of its constant inputs are indexed by channels (declared as ParamSlices, so slicing and
    the reference model are generic), and
(c) which attributes or shape constants change when channels go (`rewrite`).
"""

from __future__ import annotations

import onnx

from ..context import PropagateContext, RewriteContext


class Handler:
    unit = "channels"  # what one unit born at this op is called in reports
    linear = None  # a LinearView where the op is a linear consumer (calibration, compensation)

    def propagate(self, node: onnx.NodeProto, ctx: PropagateContext) -> None:
        raise NotImplementedError

    def rewrite(self, node: onnx.NodeProto, ctx: RewriteContext) -> None:
        """Update attributes / shape constants after channels are removed (most ops: nothing)."""


def norm_axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def int_list(value) -> list[int]:
    return [int(v) for v in (value.tolist() if hasattr(value, "tolist") else value)]


class LinearView:
    """How calibration, compensation and the reconstruction cost see a linear consumer,
    y = W x + b over the positions of one input (the way onnxruntime's quantizer keeps one class
    per op family). A handler that owns a linear op sets `linear` to one of these.

    `kind` names the view in reports; `reads(index, p)` says whether the weight slice `p` is the
    W of that product; `open(node, writer, index)` returns (W as outputs x read positions, b per
    output, extra, bias_per_output) or None; `write(...)` puts a new [W b] back."""
    kind = "other"

    def reads(self, index, p) -> bool:
        return False

    def geometry(self, index, node):
        """(pointwise, patches) for ops whose rows are pixels or kernel windows (Conv)."""
        return False, None

    def rows_exact(self, site) -> bool:
        """Each calibration row of the site is one input vector of the product."""
        return True

    def open(self, node, writer, index):
        raise NotImplementedError

    def write(self, lin, w_new, b_new, new_adds: list, node_pos: int) -> None:
        raise NotImplementedError

    def hidden_state_input(self, p) -> bool:
        """The slice multiplies a state that is no tensor of the graph (a recurrence): no site."""
        return False


def optional_const(writer, node, i, n):
    """The constant input i as float64, zeros(n) when absent (None if n is None)."""
    import numpy as np

    if len(node.input) > i and node.input[i]:
        return writer.current(node, i).astype(np.float64)
    return None if n is None else np.zeros(n)


def set_or_add(writer, node, i, array, suffix) -> None:
    """Write constant input i, adding the input (named after the node) where it is absent."""
    if len(node.input) > i and node.input[i]:
        writer.set(node, i, array)
    else:
        writer.add_input(node, i, array, f"{node.name or node.output[0]}_{suffix}")
