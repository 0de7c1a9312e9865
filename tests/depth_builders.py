"""Residual CNNs built in code for the depth-pruning tests (a dead block: its last conv all zero)."""

from __future__ import annotations

import numpy as np

from builders import GraphBuilder


def resnet(dead: bool, seed: int = 0):
    """stem -> three residual blocks (the middle one dead when asked: its last conv is all zero) -> Gemm."""
    b = GraphBuilder(seed=seed)
    x = b.input("x", [1, 3, 8, 8])
    h = b.op("Relu", [b.conv(x, 3, 8)])
    for k in range(3):
        inner = b.op("Relu", [b.conv(h, 8, 8)])
        w = b.weight(8, 8, 3, 3) * (0.0 if dead and k == 1 else 1.0)
        bias = np.zeros(8) if dead and k == 1 else b.rng.standard_normal(8) * 0.1
        last = b.op("Conv", [inner, b.const(w), b.const(bias)], kernel_shape=[3, 3], pads=[1] * 4)
        h = b.op("Relu", [b.op("Add", [h, last])])
    y = b.gemm(b.op("Flatten", [b.op("GlobalAveragePool", [h])]), 8, 5)
    return b.model([y])
