"""Reconstruction order when the consumers will be refit (`--criterion reconstruction --compensate lstsq`).

Without compensation, removing channel set S from a linear consumer y = W x costs E||W_S x_S||^2
(criteria_data). With lstsq compensation the kept inputs are refit, so what is lost is only the part
of x_S the kept inputs (and a constant) cannot predict: with G = E[[x,1][x,1]^T] and H = G^-1 over
the inputs still kept, removing block c next costs tr(W_c (H_cc)^-1 W_c^T), after which the other
columns absorb it, W <- W - W_c (H_cc)^-1 H_c., and H <- H - H_.c (H_cc)^-1 H_c. (Optimal Brain
Surgeon for whole channels; the greedy order of OBC/SparseGPT, Frantar & Alistarh 2022, with the
bias refit too). A channel that is a mix of others then costs nothing, however large it is —
ranking by the no-refit cost would keep it and drop a unique one. Measured on the zoo recognizer
(benchmarks/zoo_results.py): see the README.

Each site's cost is relative to its output energy tr(W G W^T); sites with no full moments (wide,
grouped or non-linear consumers) add their no-refit cost, as criteria_data does.
"""

from __future__ import annotations

import numpy as np

from .compensate import RIDGE
from .criteria_data import consumer_matrix, removal_cost


class _RefitSite:
    """One refit consumer: current weights W (outputs x inputs), H over the kept inputs (the last
    row/column is the constant, never removed) and each channel class's input positions."""

    def __init__(self, w: np.ndarray, moment: np.ndarray, onehot: np.ndarray):
        g = moment.copy()
        n = g.shape[0] - 1
        lam = RIDGE * max(float(np.mean(np.diag(g)[:-1])), 1e-12)
        g[np.arange(n), np.arange(n)] += lam
        self.h = np.linalg.inv(g)
        self.w = np.concatenate([w, np.zeros((w.shape[0], 1))], axis=1)
        self.energy = max(float(np.einsum("ij,jk,ik->", w, moment[:-1, :-1], w)), 1e-30)
        self.blocks = [np.flatnonzero(onehot[:, k]) for k in range(onehot.shape[1])]

    def costs(self) -> np.ndarray:
        """Cost of removing each class next, batched over classes with as many input positions."""
        out = np.zeros(len(self.blocks))
        by_size: dict[int, list[int]] = {}
        for k, b in enumerate(self.blocks):
            if b.size:
                by_size.setdefault(b.size, []).append(k)
        for n, ks in by_size.items():
            idx = np.stack([self.blocks[k] for k in ks])  # [K, n]
            hb = self.h[idx[:, :, None], idx[:, None, :]]  # [K, n, n]
            wb = np.moveaxis(self.w[:, idx], 0, -1)  # [K, n, outputs]
            out[ks] = np.einsum("kno,kno->k", wb, np.linalg.solve(hb, wb))
        return out / self.energy

    def remove(self, k: int) -> None:
        b = self.blocks[k]
        if b.size == 0:
            return
        inv = np.linalg.inv(self.h[np.ix_(b, b)])
        self.w -= self.w[:, b] @ inv @ self.h[b, :]
        self.h -= self.h[:, b] @ inv @ self.h[b, :]
        self.w[:, b] = 0.0
        self.h[b, :] = 0.0
        self.h[:, b] = 0.0
        self.h[b, b] = 1.0  # a removed input: decoupled, never chosen again


def refit_order(analysis, sites, calib, size: int) -> np.ndarray:
    """Scores (higher = keep): the accumulated refit cost at the greedy step removing each channel."""
    refit, fixed = [], []
    for site, onehot in sites:
        moment = calib.moment(site)
        linear = site.kind in ("gemm", "matmul", "rnn") or (site.kind == "conv" and (site.pointwise or site.patches))
        if moment is None or not linear:
            fixed.append((site, onehot))
            continue
        if site.patches is not None:
            w = analysis.index.const(site.param.tensor).astype(np.float64)
            w = w.reshape(w.shape[0], -1)
            onehot = np.repeat(onehot, site.features // onehot.shape[0], axis=0)
        else:
            w = consumer_matrix(analysis, site)
        refit.append(_RefitSite(w, moment, onehot))
    cross = removal_cost(analysis, fixed, calib, size) if fixed else np.zeros((size, size))
    increase = np.diag(cross).copy()
    removed = np.zeros(size, dtype=bool)
    scores = np.zeros(size)
    total = 0.0
    for step in range(size):
        costs = increase + sum((s.costs() for s in refit), np.zeros(size))
        c = int(np.argmin(np.where(removed, np.inf, costs)))
        total = max(total + costs[c], total)
        scores[c] = total + step * 1e-12 * (1 + abs(total))
        removed[c] = True
        increase += 2 * cross[:, c]
        for s in refit:
            s.remove(c)
    return scores
