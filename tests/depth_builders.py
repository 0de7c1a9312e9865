"""Residual CNNs built in code for the depth-pruning tests (a dead block: its last conv all zero)."""

from __future__ import annotations

import numpy as np

from builders import GraphBuilder


def resnet(dead: bool, seed: int = 0, constant: bool = False):
    """stem -> three residual blocks (the middle one dead when asked: its last conv is all zero;
    with `constant`, its last conv weight is zero but not its bias, so f(x) is a per-channel
    constant) -> Gemm."""
    b = GraphBuilder(seed=seed)
    x = b.input("x", [1, 3, 8, 8])
    h = b.op("Relu", [b.conv(x, 3, 8)])
    for k in range(3):
        inner = b.op("Relu", [b.conv(h, 8, 8)])
        w = b.weight(8, 8, 3, 3) * (0.0 if (dead or constant) and k == 1 else 1.0)
        bias = np.zeros(8) if dead and k == 1 else b.rng.standard_normal(8) * (1.0 if constant and k == 1 else 0.1)
        last = b.op("Conv", [inner, b.const(w), b.const(bias)], kernel_shape=[3, 3], pads=[1] * 4)
        h = b.op("Relu", [b.op("Add", [h, last])])
    y = b.gemm(b.op("Flatten", [b.op("GlobalAveragePool", [h])]), 8, 5)
    return b.model([y])


def mlp_chain(seed: int = 0):
    """x -> [y = x + W2 relu(W1 x + b1) + b2] -> MatMul + bias Add -> out: the block's single reader is
    linear on the last axis, so a mean repair folds into its bias."""
    b = GraphBuilder(seed=seed)
    x = b.input("x", [2, 5, 16])
    h = b.op("Relu", [b.op("Add", [b.op("MatMul", [x, b.const(b.rng.standard_normal((16, 32)) * 0.3)]),
                                   b.const(b.rng.standard_normal(32) * 0.3 + 0.5)])])
    f = b.op("Add", [b.op("MatMul", [h, b.const(b.rng.standard_normal((32, 16)) * 0.3)]),
                     b.const(b.rng.standard_normal(16) * 0.1 + 1.0)])
    y = b.op("Add", [x, f])
    out = b.op("Add", [b.op("MatMul", [y, b.const(b.rng.standard_normal((16, 8)))]), b.const(np.zeros(8))])
    return b.model([out])
