"""Low-rank factorization: a layer `y = x W (+ b)` becomes `y = (x A) B (+ b')`, A: K x r, B: r x N,
cheaper when r (K + N) < K N.

Data-aware (SVD-LLM's whitening): with Sigma the covariance of the layer's input over calibration
data (its second moment when the layer has no bias to absorb the mean), the rank-r W' minimising
E||x W - x W'||^2 is Sigma^(-1/2) . trunc_r(Sigma^(1/2) W); a bias absorbs the mean's share,
b' = b + mu (W - W'). 'asvd' scales rows by E[x_k^2]^(alpha/2) instead; 'svd' is plain truncation.
The reference holds W' = A B (and b') in the original layer, so `verify` checks only the rewrite.

Layers: MatMul with a constant 2-D weight, Gemm (transA = 0), ungrouped 1x1 Conv, and the input
weight W of LSTM/GRU/RNN (all directions share A: one MatMul on x feeds every gate).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import onnx

from threadpoolctl import threadpool_limits

from ..calibration.statistics import _with_outputs, rows_of
from ..core.constants import ConstantWriter
from ..core.graph import GraphIndex, attr, set_attr
from ..core.runtime import make_session
from ..core.shapes import input_shapes
from ..errors import UsageError
from .verify import verify

METHODS = ("whiten", "asvd", "svd")
MIN_WEIGHTS = 4096   # smaller layers: the extra op costs more than the MACs it saves
RECURRENT = ("LSTM", "GRU", "RNN")


@dataclass
class Layer:
    name: str
    node: onnx.NodeProto
    kind: str          # matmul | gemm | conv | rnn
    k: int             # input features
    n: int             # output features (all directions and gates for a recurrent layer)
    bias: tuple | None = None  # (node, input index) of a bias the mean correction may change

    def max_rank(self) -> int:
        """Largest rank that still saves: r (K + N) < K N."""
        return (self.k * self.n - 1) // (self.k + self.n)


def layer_name(node: onnx.NodeProto) -> str:
    return node.name or node.output[0]


def find_layers(model: onnx.ModelProto) -> list[Layer]:
    """Main-graph layers low-rank can factorize (constant weight, supported attributes)."""
    index = GraphIndex.build(model)
    out = []
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx") or len(node.input) < 2 or not index.is_const(node.input[1]) \
                or index.is_const(node.input[0]):
            continue
        w = index.const(node.input[1])
        op = node.op_type
        if w is None or w.dtype.kind != "f":
            continue
        if op == "MatMul" and w.ndim == 2:
            out.append(Layer(layer_name(node), node, "matmul", *w.shape, _matmul_bias(node, index)))
        elif op == "Gemm" and not attr(node, "transA", 0):
            k, n = (w.shape[1], w.shape[0]) if attr(node, "transB", 0) else w.shape
            bias = (node, 2) if len(node.input) > 2 and node.input[2] and index.is_const(node.input[2]) else None
            out.append(Layer(layer_name(node), node, "gemm", k, n, bias))
        elif op == "Conv" and w.ndim >= 3 and all(d == 1 for d in w.shape[2:]) and attr(node, "group", 1) == 1 \
                and not any(attr(node, "pads", None) or []) and _auto_pad(node) in ("NOTSET", "VALID"):
            bias = (node, 2) if len(node.input) > 2 and node.input[2] and index.is_const(node.input[2]) else None
            out.append(Layer(layer_name(node), node, "conv", w.shape[1], w.shape[0], bias))
        elif op in RECURRENT and w.ndim == 3:
            bias = (node, 3) if len(node.input) > 3 and node.input[3] and index.is_const(node.input[3]) else None
            out.append(Layer(layer_name(node), node, "rnn", w.shape[2], w.shape[0] * w.shape[1], bias))
    return out


def _auto_pad(node) -> str:
    v = attr(node, "auto_pad", "NOTSET")
    return v.decode() if isinstance(v, bytes) else v


def _matmul_bias(node, index: GraphIndex):
    """The constant bias Add that alone reads this MatMul's output, if any."""
    uses = index.consumers(node.output[0])
    if len(uses) != 1 or uses[0].node.op_type != "Add" or node.output[0] in index.graph_outputs:
        return None
    add = uses[0].node
    other = 1 - uses[0].index
    b = index.const(add.input[other])
    if b is None or b.ndim != 1 or len(index.consumers(add.input[other])) != 1:
        return None
    return (add, other)


def rank_for(layer: Layer, ratio: float, round_to: int = 4) -> int | None:
    """The rank that removes `ratio` of the layer's MACs (rounded down to round_to), or None when
    factorizing would not save anything or the layer is too small to be worth an extra op."""
    if layer.k * layer.n < MIN_WEIGHTS:
        return None
    r = int((1.0 - ratio) * layer.k * layer.n / (layer.k + layer.n))
    if r >= round_to:
        r -= r % round_to
    return r if 1 <= r <= layer.max_rank() else None


def weight_matrix(layer: Layer, w: np.ndarray) -> np.ndarray:
    """The weight as W with y = x W: K x N."""
    if layer.kind == "matmul":
        return w
    if layer.kind == "gemm":
        return w.T if attr(layer.node, "transB", 0) else w
    if layer.kind == "conv":
        return w.reshape(w.shape[0], w.shape[1]).T
    return w.reshape(-1, w.shape[2]).T  # rnn: [dirs * gates*H, K] -> K x N


def factor(w: np.ndarray, rank: int, *, method: str = "whiten", moment: np.ndarray | None = None,
           centred: bool = True, alpha: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A, B, mean shift) with A B the rank-`rank` approximation of `w` (K x N); `moment` is the
    augmented E[[x,1][x,1]^T] (K+1 x K+1). mean shift: mu (W - A B), to add to a bias."""
    w64 = w.astype(np.float64)
    k = w.shape[0]
    mu = moment[k, :k] if moment is not None else np.zeros(k)
    if method == "svd" or moment is None:
        approx = _truncate(w64, rank)
    elif method == "asvd":
        scale = np.sqrt(np.maximum(np.diag(moment)[:k], 0.0)) ** alpha
        scale = np.maximum(scale, 1e-8 * max(scale.max(), 1e-30))
        approx = _truncate(scale[:, None] * w64, rank) / scale[:, None]
    elif method == "whiten":
        sigma = moment[:k, :k] - (np.outer(mu, mu) if centred else 0.0)
        vals, vecs = np.linalg.eigh((sigma + sigma.T) / 2)
        vals = np.maximum(vals, 0.0) + 1e-6 * max(float(vals.mean()), 1e-30)  # damped: never singular
        root = vecs * np.sqrt(vals)            # S, Sigma = S S^T
        inv_root_t = vecs / np.sqrt(vals)      # (S^T)^-1
        approx = inv_root_t @ _truncate(root.T @ w64, rank)
    else:
        raise ValueError(method)
    u, s, vt = np.linalg.svd(approx, full_matrices=False)  # balanced factors of the rank-r result
    a = u[:, :rank] * np.sqrt(s[:rank])
    b = np.sqrt(s[:rank])[:, None] * vt[:rank]
    shift = mu @ (w64 - a @ b) if (centred and moment is not None) else np.zeros(w.shape[1])
    return a, b, shift


def _truncate(m: np.ndarray, rank: int) -> np.ndarray:
    u, s, vt = np.linalg.svd(m, full_matrices=False)
    return (u[:, :rank] * s[:rank]) @ vt[:rank]


def factorize(model: onnx.ModelProto, ranks: dict[str, int], *, method: str = "whiten",
              moments: dict[str, np.ndarray] | None = None) -> tuple[onnx.ModelProto, onnx.ModelProto, list[dict]]:
    """(factorized model, reference with A B in the original layers, one row per layer)."""
    layers = {l.name: l for l in find_layers(model)}
    pruned, reference = copy.deepcopy(model), copy.deepcopy(model)
    pos = {id(n): k for k, n in enumerate(model.graph.node)}
    p_nodes, r_nodes = list(pruned.graph.node), list(reference.graph.node)
    pw, rw = ConstantWriter(pruned), ConstantWriter(reference)
    index = GraphIndex.build(model)
    rows, inserts = [], []
    for name, rank in ranks.items():
        layer = layers[name]
        w = index.const(layer.node.input[1])
        wm = weight_matrix(layer, w)
        moment = (moments or {}).get(name)
        a, b, shift = factor(wm, rank, method=method, moment=moment, centred=layer.bias is not None)
        approx = (a @ b).astype(np.float32)
        err = float(np.linalg.norm(wm - approx) / max(np.linalg.norm(wm), 1e-30))
        rows.append({"layer": name, "op": layer.node.op_type, "k": layer.k, "n": layer.n, "rank": rank,
                     "weights_before": layer.k * layer.n, "weights_after": rank * (layer.k + layer.n),
                     "weight_rel_error": round(err, 6), "method": method if moment is not None else "svd"})
        k = pos[id(layer.node)]
        rw.set(r_nodes[k], 1, _back(layer, w, approx))
        if layer.bias is not None and np.any(shift):
            bnode, bi = layer.bias
            for writer, nodes in ((pw, p_nodes), (rw, r_nodes)):
                twin = nodes[pos[id(bnode)]]
                bias = writer.current(twin, bi).astype(np.float64).copy()
                if layer.kind == "rnn":  # Wb of every direction: [dirs, 2 * gates*H]
                    half = bias.shape[1] // 2
                    bias[:, :half] += shift.reshape(bias.shape[0], half)
                else:
                    bias += shift
                writer.set(twin, bi, bias.astype(np.float32))
        inserts.append((p_nodes[k], layer, a.astype(w.dtype), b.astype(w.dtype), pw))
    before = {id(node): _rewrite(node, layer, a, b, writer) for node, layer, a, b, writer in inserts}
    pw.commit()
    rw.commit()
    nodes = [m for n in p_nodes for m in ([before[id(n)]] if id(n) in before else []) + [n]]
    del pruned.graph.node[:]
    pruned.graph.node.extend(nodes)
    del pruned.graph.value_info[:]
    return pruned, reference, rows


def _back(layer: Layer, w: np.ndarray, approx: np.ndarray) -> np.ndarray:
    """W' (K x N) in the layer's own weight layout."""
    if layer.kind == "matmul":
        return approx.astype(w.dtype)
    if layer.kind == "gemm":
        return (approx.T if attr(layer.node, "transB", 0) else approx).astype(w.dtype)
    if layer.kind == "conv":
        return approx.T.reshape(w.shape).astype(w.dtype)
    return approx.T.reshape(w.shape).astype(w.dtype)


def _rewrite(node, layer: Layer, a: np.ndarray, b: np.ndarray, writer: ConstantWriter) -> None:
    """node reads x A from a new node (inserted before it) and applies B itself."""
    x, mid = node.input[0], f"{node.output[0]}_lowrank"
    w = writer.current(node, 1)
    rank = a.shape[1]
    if layer.kind == "matmul":
        first = onnx.helper.make_node("MatMul", [x, ""], [mid], name=f"{layer.name}_lowrank")
        writer.add_input(first, 1, a, f"{node.input[1]}_lowrank_a")
        writer.set(node, 1, b)
    elif layer.kind == "gemm":
        first = onnx.helper.make_node("Gemm", [x, ""], [mid], name=f"{layer.name}_lowrank", transB=1)
        writer.add_input(first, 1, np.ascontiguousarray(a.T), f"{node.input[1]}_lowrank_a")
        writer.set(node, 1, np.ascontiguousarray(b.T) if attr(node, "transB", 0) else b)
    elif layer.kind == "conv":
        first = onnx.helper.make_node("Conv", [x, ""], [mid], name=f"{layer.name}_lowrank")
        strides = attr(node, "strides", None)
        if strides:
            first.attribute.append(onnx.helper.make_attribute("strides", strides))
            set_attr(node, "strides", [1] * len(strides))
        spatial = w.shape[2:]
        writer.add_input(first, 1, a.T.reshape((rank, layer.k) + spatial), f"{node.input[1]}_lowrank_a")
        writer.set(node, 1, np.ascontiguousarray(b.T).reshape((layer.n, rank) + spatial))
    else:  # rnn: x A on the last axis of [T, B, K] or [B, T, K]
        first = onnx.helper.make_node("MatMul", [x, ""], [mid], name=f"{layer.name}_lowrank")
        writer.add_input(first, 1, a, f"{node.input[1]}_lowrank_a")
        writer.set(node, 1, np.ascontiguousarray(b.T).reshape(w.shape[0], w.shape[1], rank))
    node.input[0] = mid
    return first


def input_moments(model: onnx.ModelProto, layers: list[Layer], feeds) -> dict[str, np.ndarray]:
    """Per layer, E[[x,1][x,1]^T] of its input over `feeds` (the statistic calibration keeps per
    consumer, measured here on the model as it is now: after width pruning, inputs have changed)."""
    values = sorted({l.node.input[0] for l in layers})
    probe, fetched = _with_outputs(model, values)
    session = make_session(probe)
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    with threadpool_limits(limits=1, user_api="blas"):
        for feed in feeds:
            got = dict(zip(fetched, session.run(fetched, feed))) if fetched else {}
            got.update({k: v for k, v in feed.items() if k in values})
            for layer in layers:
                rows = rows_of(got[layer.node.input[0]], 1 if layer.kind == "conv" else -1)
                aug = np.concatenate([rows, np.ones((rows.shape[0], 1))], axis=1)
                sums[layer.name] = sums.get(layer.name, 0) + aug.T @ aug
                counts[layer.name] = counts.get(layer.name, 0) + rows.shape[0]
    if not counts and layers:
        raise UsageError("the calibration data holds no examples (low-rank factorization needs them)")
    return {k: v / max(1, counts[k]) for k, v in sums.items()}


def choose_ranks(model: onnx.ModelProto, *, ratio: float | None = None, ranks: dict[str, int] | None = None,
                 round_to: int = 4, exclude=()) -> dict[str, int]:
    """Per-layer ranks: the given ones (checked), else `ratio` of each eligible layer's MACs removed."""
    layers = {l.name: l for l in find_layers(model)}
    if ranks:
        for name, r in ranks.items():
            if name not in layers:
                raise UsageError(f"--rank names '{name}', which is not a factorizable layer "
                                 f"(MatMul/Gemm/1x1 Conv/LSTM/GRU with a constant weight)")
            if not 1 <= r <= layers[name].max_rank():
                raise UsageError(f"--rank {name}={r}: use 1 <= rank <= {layers[name].max_rank()} "
                                 f"(a higher rank would not save anything)")
        return dict(ranks)
    if ratio is None:
        return {}
    if not 0.0 < ratio < 1.0:
        raise UsageError(f"--low-rank {ratio} is out of range: use 0 < RATIO < 1 (the share of each layer's MACs to remove)")
    out = {}
    for name, layer in layers.items():
        if name in exclude or layer.node.input[1] in exclude:
            continue
        r = rank_for(layer, ratio, round_to)
        if r is not None:
            out[name] = r
    return out


def lowrank_step(model: onnx.ModelProto, ranks: dict[str, int], *, method: str = "whiten", calibration=None,
                 shapes: dict | None = None, values: dict | None = None, check: bool = True, atol: float = 1e-5,
                 rtol: float = 1e-4, seed: int = 0):
    """(factorized model, step report): data-aware when calibration feeds are given (else plain SVD),
    verified against the model holding A.B (and the shifted bias) in the original layers."""
    if method not in METHODS:
        raise UsageError(f"unknown low-rank method '{method}' (choose from {', '.join(METHODS)})")
    used = method if calibration is not None or method == "svd" else "svd"
    layers = [l for l in find_layers(model) if l.name in ranks]
    moments = input_moments(model, layers, calibration) if used != "svd" else None
    pruned, reference, rows = factorize(model, ranks, method=used, moments=moments)
    info = {"step": "lowrank", "method": used, "layers": rows, "verify": None}
    if check:
        fed = input_shapes(GraphIndex.build(model), shapes or {})
        info["verify"] = verify(pruned, reference, fed, atol=atol, rtol=rtol, original=model,
                                seeds=(seed, seed + 1), values=values).to_dict()
    return pruned, info
