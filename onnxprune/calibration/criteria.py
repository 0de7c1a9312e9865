"""Data-aware importance: what a channel's consumers actually see on calibration data.

activation      mean |a| of the channel where its consumers read it (summed over consumers, each
                normalised by its mean, like the magnitude criteria); APoZ is reported beside it.
reconstruction  the order in which removing channels least changes the consumers' outputs, greedily
                (ThiNet, Luo et al. 2017; He et al. 2017): removing a set S from a linear consumer
                y = W x changes y by W_S x_S, with E||W_S x_S||^2 = sum_{i,j in S} (W_i.W_j) E[x_i x_j].
                Each channel scores the accumulated error at the step the greedy order removes it,
                so a plan that keeps the top-k keeps exactly the greedy survivors. With lstsq
                compensation the cost is what the refit cannot recover (refit_order below).
"""

from __future__ import annotations

import numpy as np

from ..analysis import Analysis, Group
from .statistics import Calibration, Site
from .compensate import RIDGE

DATA_CRITERIA = ("activation", "reconstruction")


def sites_of(analysis: Analysis, group: Group, calib: Calibration) -> list[tuple[Site, np.ndarray]]:
    """Sites reading this group's channels, each with a positions x classes one-hot map."""
    local = {root: i for i, root in enumerate(group.classes)}
    out = []
    for site in calib.sites:
        roots = analysis.atoms.roots(site.param.labels).tolist()
        onehot = np.zeros((len(roots), group.size))
        for pos, r in enumerate(roots):
            if r in local:
                onehot[pos, local[r]] = 1.0
        if onehot.any():
            out.append((site, onehot))
    return out


def score_group_data(analysis: Analysis, group: Group, criterion: str, calib: Calibration, *,
                     refit: bool = False) -> np.ndarray | None:
    """Scores (higher = keep), or None where no calibrated consumer reads the group. refit: the
    consumers will be refit by lstsq compensation, so reconstruction ranks by what a refit
    cannot recover (refit_order below)."""
    sites = sites_of(analysis, group, calib)
    if not sites:
        return None
    if criterion == "activation":
        return _activation(sites, calib)
    if refit:
        return refit_order(analysis, sites, calib, group.size)
    return _greedy_order(removal_cost(analysis, sites, calib, group.size))


def apoz(analysis: Analysis, group: Group, calib: Calibration) -> np.ndarray | None:
    """Per channel, the fraction of calibration values <= 0 where its consumers read it."""
    sites = sites_of(analysis, group, calib)
    if not sites:
        return None
    total = sum(calib.of(s).apoz @ onehot for s, onehot in sites)
    count = sum(onehot.sum(axis=0) for _, onehot in sites)
    return total / np.maximum(count, 1)


def _activation(sites, calib: Calibration) -> np.ndarray:
    total = 0.0
    for site, onehot in sites:
        per_class = (calib.of(site).mean_abs @ onehot) / np.maximum(onehot.sum(axis=0), 1)
        positive = per_class[per_class > 0]
        if positive.size:
            total = total + per_class / positive.mean()
    return np.asarray(total, dtype=np.float64) * np.ones(sites[0][1].shape[1])


def consumer_matrix(analysis: Analysis, site: Site) -> np.ndarray:
    """The consumer's weight as (outputs x read positions); a Conv's kernel offsets become rows."""
    w = analysis.index.const(site.param.tensor).astype(np.float64)
    k = w.shape[site.param.axis]
    return np.moveaxis(w, site.param.axis, -1).reshape(-1, k)


def removal_cost(analysis, sites, calib: Calibration, size: int) -> np.ndarray:
    """M[c, d]: the cross term of channels c and d in the consumers' squared output change."""
    total = np.zeros((size, size))
    for site, onehot in sites:
        second = calib.moment(site)
        if second is not None and site.patches is not None:
            # a k x k Conv over its kernel windows: exact, offsets and their correlations included
            w = analysis.index.const(site.param.tensor).astype(np.float64)
            flat = w.reshape(w.shape[0], -1)
            c = w.shape[1]
            cross = ((flat.T @ flat) * second[:-1, :-1]).reshape(c, -1, c, flat.shape[1] // c).sum(axis=(1, 3))
        else:
            w = consumer_matrix(analysis, site)
            if second is None:  # wide consumer: uncorrelated positions (diagonal moments)
                second = np.diag(calib.of(site).mean_sq)
            else:
                second = second[:-1, :-1]
            cross = (w.T @ w) * second
        per_class = onehot.T @ cross @ onehot
        scale = np.diag(per_class)[np.diag(per_class) > 0]
        if scale.size:
            total += per_class / scale.mean()
    return total


def _greedy_order(m: np.ndarray) -> np.ndarray:
    """Remove, one at a time, the channel that adds least error to those already removed."""
    n = len(m)
    increase = np.diag(m).copy()
    removed = np.zeros(n, dtype=bool)
    scores = np.zeros(n)
    cost = 0.0
    for step in range(n):
        c = int(np.argmin(np.where(removed, np.inf, increase)))
        cost = max(cost + increase[c], cost)  # never decreasing, so ranking follows the order
        scores[c] = cost + step * 1e-12 * (1 + abs(cost))
        removed[c] = True
        increase += 2 * m[:, c]
    return scores


# Reconstruction order when the consumers will be refit (--criterion reconstruction --compensate lstsq).
#
# Reconstruction order when the consumers will be refit (`--criterion reconstruction --compensate lstsq`).
#
# Without compensation, removing channel set S from a linear consumer y = W x costs E||W_S x_S||^2
# (removal_cost above). With lstsq compensation the kept inputs are refit, so what is lost is only the part
# of x_S the kept inputs (and a constant) cannot predict: with G = E[[x,1][x,1]^T] and H = G^-1 over
# the inputs still kept, removing block c next costs tr(W_c (H_cc)^-1 W_c^T), after which the other
# columns absorb it, W <- W - W_c (H_cc)^-1 H_c., and H <- H - H_.c (H_cc)^-1 H_c. (Optimal Brain
# Surgeon for whole channels; the greedy order of OBC/SparseGPT, Frantar & Alistarh 2022, with the
# bias refit too). A channel that is a mix of others then costs nothing, however large it is —
# ranking by the no-refit cost would keep it and drop a unique one. Measured on the zoo recognizer
# (benchmarks/zoo_results.py): see the README.
#
# Each site's cost is relative to its output energy tr(W G W^T); sites with no full moments (wide,
# grouped or non-linear consumers) add their no-refit cost, as removal_cost does.


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
        linear = site.rows_exact
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
