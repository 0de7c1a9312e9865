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
from ..core.graph import GraphIndex, attr
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
        exact = moment is not None and (site.kind != "conv" or site.pointwise or site.patches is not None)
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
    """A consumer seen as y = W x + b: W as (outputs x read positions), b per output."""

    def __init__(self, site, node, writer, index, w, bias, extra=None, bias_per_output=True):
        self.site, self.node, self.writer, self.index = site, node, writer, index
        self.w, self.bias = w, bias  # float64; bias is per output (what the refit may change)
        self.extra = extra  # what writing back needs: Gemm (alpha, beta, transB, C), MatMul's Add, RNN dims
        self.bias_per_output = bias_per_output
        self.flat = False  # a k x k Conv seen over kernel windows: W as (outputs x channels*offsets)

    @classmethod
    def of(cls, site: Site, node, writer: ConstantWriter, index: GraphIndex):
        w = writer.current(node, 1).astype(np.float64)
        kind = site.kind
        if kind == "conv" and int(attr(node, "group", 1)) == 1:
            b = _opt_const(writer, node, 2, w.shape[0])
            return cls(site, node, writer, index, w, b)
        if kind == "gemm":
            alpha, beta = float(attr(node, "alpha", 1.0)), float(attr(node, "beta", 1.0))
            trans_b = int(attr(node, "transB", 0))
            n = w.shape[0] if trans_b else w.shape[1]
            c = writer.current(node, 2) if len(node.input) > 2 and node.input[2] else None
            if beta == 0.0:  # the bias term is switched off: nowhere to fold a correction
                return None
            per_output = c is None or c.ndim == 0 or (c.size == n) or c.size == 1
            b = np.zeros(n)
            if c is not None and per_output:  # C of shape (), (1,), (N,) or (1, N)
                b = np.broadcast_to(beta * c.astype(np.float64).reshape(-1), (n,)).copy()
            wm = (w if trans_b else w.T) * alpha
            return cls(site, node, writer, index, wm, b, (alpha, beta, trans_b, c), per_output)
        if kind == "matmul" and w.ndim == 2:
            add = _following_add(index, node, w.shape[1])
            b = np.zeros(w.shape[1]) if add is None else \
                index.const(add[0].input[add[1]]).astype(np.float64).reshape(-1)
            return cls(site, node, writer, index, w.T, b, add)
        if kind == "rnn":
            d, gh, _ = w.shape
            bias = _opt_const(writer, node, 3, None)
            wb = np.zeros((d, gh)) if bias is None else bias.astype(np.float64)[:, :gh]
            return cls(site, node, writer, index, w.reshape(d * gh, -1), wb.reshape(-1), (d, gh))
        return None

    def augmented(self) -> np.ndarray:
        """[W b]: W flattened over kernel windows, or with its kernel offsets summed (per-pixel
        statistics: exact for a 1x1 Conv, the bias estimate for a k x k one without moments)."""
        return np.concatenate([self.matrix(), self.bias[:, None]], axis=1)

    def matrix(self) -> np.ndarray:
        if self.flat:
            return self.w.reshape(self.w.shape[0], -1)
        return self.w.sum(axis=tuple(range(2, self.w.ndim))) if self.w.ndim > 2 else self.w

    def write(self, new: np.ndarray, new_adds: list, node_pos: int) -> None:
        w_new, b_new = new[:, :-1], new[:, -1]
        node, writer, kind = self.node, self.writer, self.site.kind
        dtype = writer.current(node, 1).dtype
        if kind == "conv":
            w = self.w if np.array_equal(w_new, self.matrix()) else w_new.reshape(self.w.shape)
            writer.set(node, 1, w.astype(dtype))
            _set_or_add(writer, node, 2, b_new.astype(dtype), "bias")
        elif kind == "gemm":
            alpha, beta, trans_b, c = self.extra
            wm = w_new / alpha
            writer.set(node, 1, (wm if trans_b else wm.T).astype(dtype))
            if c is None:
                _set_or_add(writer, node, 2, (b_new / beta).astype(dtype), "bias")
            else:
                shape = np.broadcast_shapes(c.shape, b_new.shape)
                writer.set(node, 2, (np.broadcast_to(c, shape) + (b_new - self.bias) / beta).astype(c.dtype))
        elif kind == "matmul":
            writer.set(node, 1, w_new.T.astype(dtype))
            if self.extra is None:
                new_adds.append((node_pos, b_new.astype(dtype)))
            else:
                add, k = self.extra
                c = self.index.const(add.input[k])
                writer.set(add, k, (c + (b_new - self.bias).reshape(c.shape)).astype(c.dtype))
        elif kind == "rnn":
            d, gh = self.extra
            writer.set(node, 1, w_new.reshape(d, gh, -1).astype(dtype))
            bias = _opt_const(writer, node, 3, None)
            full = np.zeros((d, 2 * gh)) if bias is None else bias.astype(np.float64).copy()
            full[:, :gh] = b_new.reshape(d, gh)
            _set_or_add(writer, node, 3, full.astype(dtype), "B")


def _opt_const(writer, node, i, n):
    if len(node.input) > i and node.input[i]:
        return writer.current(node, i).astype(np.float64)
    return None if n is None else np.zeros(n)


def _set_or_add(writer, node, i, array, suffix) -> None:
    if len(node.input) > i and node.input[i]:
        writer.set(node, i, array)
    else:
        writer.add_input(node, i, array, f"{node.name or node.output[0]}_{suffix}")


def _following_add(index: GraphIndex, node, n: int):
    """The Add that adds a constant bias of n values to this MatMul's output, if it is the only reader."""
    uses = index.consumers(node.output[0])
    if len(uses) != 1 or uses[0].node.op_type != "Add":
        return None
    add = uses[0].node
    other = 1 - list(add.input).index(node.output[0])
    value = index.const(add.input[other])
    if value is None or value.size != n or value.shape[-1] != n or len(index.consumers(add.input[other])) != 1:
        return None
    return add, other


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
