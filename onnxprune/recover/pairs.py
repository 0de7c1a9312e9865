"""Which channels of each pruned layer's output survive, from the prune result's plan: the
original's output restricted to those channels is what the pruned layer should reproduce."""

from __future__ import annotations

import numpy as np

from ..analysis.context import RewriteContext
from ..prune.plan import removed_classes


def kept_channels(result) -> dict[str, tuple[int, np.ndarray]]:
    """Output tensor of every channel source (Conv, Gemm, MatMul, recurrent op) that lost
    channels -> (axis, kept indices)."""
    analysis = result.analysis
    ctx = RewriteContext(analysis, removed_classes(analysis, result.plan), writer=None)
    out = {}
    for s in analysis.sources:
        keep = ctx.kept(s.output, s.axis)
        if keep is not None and not keep.all() and keep.any():
            out[s.output] = (s.axis, np.flatnonzero(keep))
    return out
