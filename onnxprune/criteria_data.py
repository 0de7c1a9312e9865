"""Data-aware importance: what a channel's consumers actually see on calibration data.

activation      mean |a| of the channel where its consumers read it (summed over consumers, each
                normalised by its mean, like the magnitude criteria); APoZ is reported beside it.
reconstruction  the order in which removing channels least changes the consumers' outputs, greedily
                (ThiNet, Luo et al. 2017; He et al. 2017): removing a set S from a linear consumer
                y = W x changes y by W_S x_S, with E||W_S x_S||^2 = sum_{i,j in S} (W_i.W_j) E[x_i x_j].
                Each channel scores the accumulated error at the step the greedy order removes it,
                so a plan that keeps the top-k keeps exactly the greedy survivors. With lstsq
                compensation the cost is what the refit cannot recover (criteria_refit.py).
"""

from __future__ import annotations

import numpy as np

from .analysis import Analysis, Group
from .calibrate import Calibration, Site

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
    cannot recover (criteria_refit)."""
    sites = sites_of(analysis, group, calib)
    if not sites:
        return None
    if criterion == "activation":
        return _activation(sites, calib)
    if refit:
        from .criteria_refit import refit_order

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
