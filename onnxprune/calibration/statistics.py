"""Calibration statistics in one pass: every value a channel consumer reads becomes an extra output
of ONE onnxruntime session, which runs over the calibration feeds while per-channel statistics
accumulate in float64, streaming (memory bounded by one example plus the accumulators).

What a *site* is: a weight slice with role 'consumer' (the columns that read a channel) together
with the run-time tensor and axis it reads. Data-aware criteria rank channels by what their
consumers see; compensation rewrites a consumer's weights from its input's moments. For a linear
consumer y = W x + b the target output is a linear function of x, so E[x x^T] (augmented with a
constant 1) is all least squares needs: X^T Y = X^T X [W b]^T, no second accumulator.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import onnx

from ..analysis import Analysis
from ..analysis.context import ParamSlice
from ..analysis.handlers.base import LinearView
from ..analysis.handlers.registry import linear_view_for
from ..errors import ModelError, UsageError, first_line
from ..core.runtime import make_session

MAX_FEATURES = 2048  # full second moments per site above this width would cost > 32 MB: diagonal only


@dataclass
class Site:
    """One consumer weight slice and the tensor/axis whose positions it reads."""

    param: ParamSlice
    value: str
    axis: int
    view: LinearView | None  # how its op is a linear product (the handler's), None: not linear
    pointwise: bool = False  # a 1x1, ungrouped, unpadded Conv: a plain matrix product per pixel
    patches: tuple | None = None  # a k x k ungrouped Conv: (kernel, pads, strides, dilations, auto_pad)

    @property
    def features(self) -> int:
        """Width of the rows least squares sees: channels, or channels x kernel offsets (patches)."""
        return self.param.labels.size * (int(np.prod(self.patches[0])) if self.patches else 1)

    @property
    def node(self) -> onnx.NodeProto:
        return self.param.node

    @property
    def kind(self) -> str:
        return self.view.kind if self.view is not None else "other"

    @property
    def rows_exact(self) -> bool:
        """Each calibration row is one input of the product (a k x k Conv: only over windows)."""
        return self.view is not None and self.view.rows_exact(self)


@dataclass
class ChannelStats:
    """Streaming per-position statistics of one tensor along one axis."""

    n: int = 0
    total: np.ndarray | None = None
    total_abs: np.ndarray | None = None
    total_sq: np.ndarray | None = None
    nonpositive: np.ndarray | None = None

    def add(self, value: np.ndarray, axis: int) -> None:
        """Fold in one tensor: sums over every axis but `axis`, accumulated in float64."""
        value = np.asarray(value)
        others = tuple(a for a in range(value.ndim) if a != axis)
        if self.total is None:
            k = value.shape[axis]
            self.total, self.total_abs, self.total_sq, self.nonpositive = (np.zeros(k) for _ in range(4))
        self.n += value.size // max(1, value.shape[axis])
        self.total += value.sum(axis=others, dtype=np.float64)
        self.total_abs += np.abs(value).sum(axis=others, dtype=np.float64)
        self.total_sq += np.square(value, dtype=np.float64).sum(axis=others)
        self.nonpositive += (value <= 0).sum(axis=others)

    @property
    def mean(self) -> np.ndarray:
        return self.total / max(1, self.n)

    @property
    def mean_abs(self) -> np.ndarray:
        return self.total_abs / max(1, self.n)

    @property
    def mean_sq(self) -> np.ndarray:
        return self.total_sq / max(1, self.n)

    @property
    def apoz(self) -> np.ndarray:
        """Average percentage of zeros (here: of values <= 0, as after a ReLU)."""
        return self.nonpositive / max(1, self.n)


@dataclass
class Calibration:
    sites: list[Site]
    stats: dict[tuple[str, int], ChannelStats]
    moments: dict[int, np.ndarray] = field(default_factory=dict)  # id(site param) -> E[[x,1][x,1]^T] (x: patches for k x k)
    examples: int = 0
    seconds: float = 0.0

    def of(self, site: Site) -> ChannelStats:
        return self.stats[(site.value, site.axis)]

    def moment(self, site: Site) -> np.ndarray | None:
        return self.moments.get(id(site.param))


def consumer_sites(analysis: Analysis) -> list[Site]:
    """Every consumer slice whose read tensor is known (the recurrence R reads the hidden state,
    which is no tensor of the graph, so it has no site)."""
    sites = []
    main = {id(n) for n in analysis.model.graph.node}
    for p in analysis.params:
        view = linear_view_for(p.node)
        if p.role != "consumer" or (view is not None and view.hidden_state_input(p)):
            continue
        if id(p.node) not in main:  # inside an If branch: its values cannot be graph outputs (no site)
            continue
        found = _read_value(analysis, p)
        if found is not None:
            view = view if view is not None and view.reads(analysis.index, p) else None
            pointwise, patches = view.geometry(analysis.index, p.node) if view is not None else (False, None)
            sites.append(Site(p, found[0], found[1], view, pointwise, patches if found[1] == 1 else None))
    return sites


def _read_value(analysis: Analysis, p: ParamSlice):
    for name in p.node.input:
        if not name or analysis.index.is_const(name):
            continue
        for axis, labels in analysis.dims.get(name, {}).items():
            if isinstance(axis, int) and labels.shape == p.labels.shape and np.array_equal(labels, p.labels):
                return name, axis
    return None


def patch_rows(x: np.ndarray, geometry) -> np.ndarray:
    """im2col: one row per output position of the Conv, holding the input values its kernel reads
    (zeros where it reads padding), ordered (channel, kernel offsets) as W.reshape(C_out, -1) is."""
    kernel, pads, strides, dilations, auto_pad = geometry
    n = len(kernel)
    x = np.asarray(x, dtype=np.float64)
    spatial = x.shape[2:]
    if auto_pad.startswith("SAME"):
        pads = [0] * 2 * n
        for i, (size, k, s, d) in enumerate(zip(spatial, kernel, strides, dilations)):
            total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
            first = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
            pads[i], pads[i + n] = first, total - first
    x = np.pad(x, [(0, 0), (0, 0)] + [(pads[i], pads[i + n]) for i in range(n)])
    extent = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    windows = np.lib.stride_tricks.sliding_window_view(x, extent, axis=tuple(range(2, 2 + n)))
    # [N, C, out..., extent...]: keep every stride-th position and every dilation-th offset
    index = (slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides) + \
        tuple(slice(None, None, d) for d in dilations)
    windows = windows[index]
    channels = x.shape[1]
    moved = np.moveaxis(windows, 1, 1 + n)  # [N, out..., C, kernel...]
    return moved.reshape(-1, channels * int(np.prod(kernel)))


def rows_of(value: np.ndarray, axis: int) -> np.ndarray:
    """The tensor as rows of features: axis last, everything else flattened."""
    value = np.asarray(value, dtype=np.float64)
    return np.moveaxis(value, axis, -1).reshape(-1, value.shape[axis])


def wants_moments(site: Site) -> bool:
    """Full second moments (per pixel for a 1x1 Conv, per kernel window for a k x k one, per time
    step for a recurrent input) for linear consumers up to MAX_FEATURES wide; wider ones keep only
    the diagonal (mean of squares)."""
    return site.view is not None and site.features <= MAX_FEATURES


def calibrate(analysis: Analysis, feeds: Iterable[dict], *, moments: bool = False) -> Calibration:
    """Run the model once over `feeds`, with every site's read tensor as an extra output.

    BLAS runs single-threaded here: onnxruntime's pool spins between runs, and a multi-threaded
    OpenBLAS fighting it made each small X^T X 35x slower (13 ms vs 0.37 ms for 500 x 65)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _calibrate(analysis, feeds, moments)


def _calibrate(analysis: Analysis, feeds: Iterable[dict], moments: bool) -> Calibration:
    start = time.perf_counter()
    sites = consumer_sites(analysis)
    values = sorted({s.value for s in sites})
    model, fetched = _with_outputs(analysis.model, values)
    try:
        session = make_session(model)
    except Exception as exc:
        raise ModelError(f"cannot collect calibration statistics: onnxruntime refuses the instrumented model "
                         f"({first_line(exc)})") from None
    names = [o.name for o in session.get_outputs()]
    stats = {(s.value, s.axis): ChannelStats() for s in sites}
    need = [s for s in sites if moments and wants_moments(s)]
    sums: dict[int, np.ndarray] = {}
    counts: dict[int, int] = {}
    examples = 0
    for feed in feeds:
        examples += 1
        wanted = [n for n in fetched if n in names]
        try:
            got = dict(zip(wanted, session.run(wanted, feed))) if wanted else {}
        except Exception as exc:  # wrong input names, shapes or types in the calibration data
            raise UsageError(f"calibration example {examples} does not fit the model: {first_line(exc)}") from None
        got.update({k: v for k, v in feed.items() if k in values})
        for (value, axis), st in stats.items():
            st.add(got[value], axis)
        for s in need:
            rows = patch_rows(got[s.value], s.patches) if s.patches else rows_of(got[s.value], s.axis)
            aug = np.concatenate([rows, np.ones((rows.shape[0], 1))], axis=1)
            key = id(s.param)
            sums[key] = sums.get(key, 0) + aug.T @ aug
            counts[key] = counts.get(key, 0) + rows.shape[0]
    if examples == 0:
        raise UsageError("the calibration data holds no examples")
    moms = {k: v / max(1, counts[k]) for k, v in sums.items()}
    return Calibration(sites, stats, moms, examples, time.perf_counter() - start)


def _with_outputs(model: onnx.ModelProto, values: list[str]) -> tuple[onnx.ModelProto, list[str]]:
    """A copy of `model` that also returns `values` (graph inputs are read from the feeds)."""
    graph_inputs = {i.name for i in model.graph.input}
    existing = {o.name for o in model.graph.output}
    extra = [v for v in values if v not in graph_inputs and v not in existing]
    out = onnx.ModelProto()
    out.CopyFrom(model)
    types = _elem_types(model)
    for v in extra:
        out.graph.output.append(onnx.helper.make_tensor_value_info(v, types.get(v, onnx.TensorProto.FLOAT), None))
    return out, [v for v in values if v not in graph_inputs]


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:
        return {}
    return {vi.name: vi.type.tensor_type.elem_type for vi in inferred.graph.value_info
            if vi.type.tensor_type.elem_type}


def plain_pass_seconds(model: onnx.ModelProto, feeds: Iterable[dict]) -> float:
    """One plain forward pass over the feeds (the unit calibration cost is quoted in)."""
    session = make_session(model)
    start = time.perf_counter()
    for feed in feeds:
        session.run(None, feed)
    return time.perf_counter() - start
