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
    def propagate(self, node: onnx.NodeProto, ctx: PropagateContext) -> None:
        raise NotImplementedError

    def rewrite(self, node: onnx.NodeProto, ctx: RewriteContext) -> None:
        """Update attributes / shape constants after channels are removed (most ops: nothing)."""


def norm_axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def int_list(value) -> list[int]:
    return [int(v) for v in (value.tolist() if hasattr(value, "tolist") else value)]
