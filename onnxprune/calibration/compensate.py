"""Weight compensation after channel selection, at ORIGINAL shapes.

A removed channel's consumers lose its contribution W_R x_R. `bias` adds its calibration mean back,
W_R E[x_R], into the consumer's bias (creating one where there is none); `lstsq` refits the
consumer's kept input weights and bias by ridge-regularised least squares so that its output on
the calibration data matches the original's, from the moments E[[x,1][x,1]^T] alone.

The compensated model keeps every shape: pruning and its reference are then both made from it, so
the exactness check (pruned == reference) still holds in its general form.

Supported consumers: Conv (ungrouped; a 1x1 one per pixel, a 1-D/2-D k x k one over its kernel
windows, im2col with its pads/strides/dilations, so W and b are refit exactly as the Conv applies
them), Gemm (alpha/beta honoured), MatMul with a constant right operand (its bias is the following
constant Add, or a new Add), LSTM/GRU/RNN input weights W (bias Wb). Anything else is reported as
not compensated; lstsq falls back to bias where it has no moments (wider than MAX_FEATURES
channels x kernel offsets, a 3-D Conv).
"""

from __future__ import annotations

import copy

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..analysis import Analysis
from .statistics import Calibration, Site
from ..core.graph import GraphIndex
from ..core.constants import ConstantWriter

METHODS = ("none", "bias", "lstsq")
RIDGE = 1e-6  # relative to the mean diagonal of the kept moments: keeps the refit well posed


def compensate(analysis: Analysis, removed: set[int], calib: Calibration, method: str,
               ridge: float = RIDGE) -> tuple[onnx.ModelProto, list[dict]]:
    """A copy of the (folded) analysed model with compensated weights, and one report row per
    consumer that lost inputs."""
    model = copy.deepcopy(analysis.model)
    position = {id(n): k for k, n in enumerate(analysis.model.graph.node)}
    nodes = model.graph.node
    writer = ConstantWriter(model)
    index = GraphIndex.build(model)
    new_adds: list[tuple[int, np.ndarray]] = []
    report, seen = [], set()
    for site in calib.sites:
        if id(site.node) not in position:  # inside an If branch: calibrate() makes no such sites
            continue
        key = (position[id(site.node)], site.param.input_index)
        keep = np.array([r not in removed for r in analysis.atoms.roots(site.param.labels).tolist()])
        if key in seen or keep.all():
            continue
        seen.add(key)
        node = nodes[key[0]]
        row = {"node": node.name or node.output[0], "op": node.op_type, "inputs_removed": int((~keep).sum()),
               "inputs": int(keep.size), "method": "none", "note": ""}
        report.append(row)
        if method == "none":
            continue
        linear = _Linear.of(site, node, writer, index)
        if linear is None:
            row["note"] = "consumer kind not supported"
            continue
        moment = calib.moment(site)
        exact = moment is not None and site.rows_exact
        if exact and site.patches is not None:  # rows are kernel windows: W flattened, a mask per offset
            linear.flat = True
            keep = np.repeat(keep, site.features // keep.size)
            mean = moment[-1, :-1]  # window means: padding zeros included, as the Conv sees them
        else:
            mean = calib.of(site).mean
        use_lstsq = method == "lstsq" and exact and linear.bias_per_output
        target = linear.augmented()
        new = target.copy()
        new[:, -1] += target[:, :-1][:, ~keep] @ mean[~keep]
        row["method"] = "bias"
        if method == "lstsq" and not use_lstsq:
            row["note"] = "no moments for this consumer (too wide, or a grouped or 3-D Conv): bias instead"
        if exact:
            row["error_none"], row["error_after"] = _errors(target, new, moment, keep)
            if use_lstsq:
                refit = _refit(target, moment, keep, ridge)
                error = _errors(target, refit, moment, keep)[1]
                if error < 0.99 * row["error_after"]:  # only where it beats bias on the calibration data
                    new, row["method"], row["error_after"] = refit, "lstsq", error
                else:
                    row["note"] = "lstsq did not lower the calibration error: bias kept"
        for k in ("error_none", "error_after"):
            if k in row:
                row[k] = float(f"{row[k]:.4g}")
        linear.write(new, new_adds, key[0])
    writer.commit()
    for node_pos, bias in sorted(new_adds, key=lambda t: -t[0]):
        _insert_add(model, writer, node_pos, bias)
    return model, report


class _Linear:
    """A consumer seen as y = W x + b through its handler's linear view: W as (outputs x read
    positions), b per output; the view reads and writes the op's own weights."""

    def __init__(self, site, node, writer, index, w, bias, extra=None, bias_per_output=True):
        self.site, self.node, self.writer, self.index = site, node, writer, index
        self.w, self.bias = w, bias  # float64; bias is per output (what the refit may change)
        self.extra = extra  # what writing back needs (the view's: Gemm's alpha/beta/transB/C, ...)
        self.bias_per_output = bias_per_output
        self.flat = False  # a k x k Conv seen over kernel windows: W as (outputs x channels*offsets)

    @classmethod
    def of(cls, site: Site, node, writer: ConstantWriter, index: GraphIndex):
        opened = site.view.open(node, writer, index) if site.view is not None else None
        return None if opened is None else cls(site, node, writer, index, *opened)

    def augmented(self) -> np.ndarray:
        """[W b]: W flattened over kernel windows, or with its kernel offsets summed (per-pixel
        statistics: exact for a 1x1 Conv, the bias estimate for a k x k one without moments)."""
        return np.concatenate([self.matrix(), self.bias[:, None]], axis=1)

    def matrix(self) -> np.ndarray:
        if self.flat:
            return self.w.reshape(self.w.shape[0], -1)
        return self.w.sum(axis=tuple(range(2, self.w.ndim))) if self.w.ndim > 2 else self.w

    def write(self, new: np.ndarray, new_adds: list, node_pos: int) -> None:
        self.site.view.write(self, new[:, :-1], new[:, -1], new_adds, node_pos)


def _insert_add(model: onnx.ModelProto, writer: ConstantWriter, node_pos: int, bias: np.ndarray) -> None:
    node = model.graph.node[node_pos]
    taken = {o for n in model.graph.node for o in n.output} | {t.name for t in model.graph.initializer}
    base = node.name or node.output[0]
    raw, bname = f"{node.output[0]}_nobias", f"{base}_bias"
    while raw in taken:
        raw += "_"
    while bname in taken:
        bname += "_"
    out = node.output[0]
    node.output[0] = raw
    writer._add_initializer(numpy_helper.from_array(bias, bname))
    model.graph.node.insert(node_pos + 1, helper.make_node("Add", [raw, bname], [out], name=f"{base}_bias_add"))


def _refit(target: np.ndarray, moment: np.ndarray, keep: np.ndarray, ridge: float) -> np.ndarray:
    """min E||[W' b'] [x_K,1] - [W b] [x,1]||^2 + lam ||W'||^2, in closed form."""
    idx = np.concatenate([np.flatnonzero(keep), [len(keep)]])
    gram = moment[np.ix_(idx, idx)]
    lam = ridge * max(float(np.mean(np.diag(gram)[:-1])) if len(idx) > 1 else 0.0, 1e-12)
    reg = np.diag(np.r_[np.full(len(idx) - 1, lam), 0.0])
    solved = np.linalg.solve(gram + reg, (target @ moment[:, idx]).T).T
    new = target.copy()
    new[:, idx] = solved
    return new


def _errors(target, new, moment, keep) -> tuple[float, float]:
    """Relative squared output error on calibration data without compensation and with it."""
    def err(t):
        mask = np.r_[keep, True]
        d = np.where(mask, t, 0.0) - target
        return float(np.einsum("ij,jk,ik->", d, moment, d))
    energy = float(np.einsum("ij,jk,ik->", target, moment, target)) or 1.0
    return err(target) / energy, err(new) / energy
