"""Apply a set of removed channels to a copy of the model.

mode='prune': slice every parameter indexed by channels, then let handlers fix attributes and
shape constants; mode='reference': keep every shape and zero only the *consumer* slices of the
removed channels (a quantized weight's are set to its zero point: they dequantize to 0). The two must compute the same function — that is what `verify` checks.
"""

from __future__ import annotations

import copy

import numpy as np
import onnx

from ..analysis import Analysis
from ..analysis.context import RewriteContext
from ..core.branches import clear_branch_value_info
from ..core.graph import iter_nodes
from ..core.fold import remove_dead
from ..analysis.handlers import handler_for
from ..analysis.handlers.quantized import weight_zero_point
from ..core.constants import ConstantWriter


def apply_removal(analysis: Analysis, removed: set[int], *, mode: str = "prune") -> onnx.ModelProto:
    model = copy.deepcopy(analysis.model)
    if not removed:
        return model
    # node k of the copy corresponds to node k of the analysed model (If branches included)
    position = {id(n): k for k, n in enumerate(iter_nodes(analysis.model.graph))}
    nodes = list(iter_nodes(model.graph))
    writer = ConstantWriter(model)
    ctx = RewriteContext(analysis, removed, writer)
    done = set()
    for p in analysis.params:
        if mode == "reference" and p.role != "consumer":
            continue
        key = (position[id(p.node)], p.input_index, p.axis)
        if key in done:
            continue
        done.add(key)
        keep = ctx.keep_mask(p.labels)
        if keep.all():
            continue
        node = nodes[key[0]]
        value = writer.current(node, p.input_index)
        fill = weight_zero_point(p.node, p.input_index, analysis.index.const) if mode == "reference" else None
        if fill is not None:
            value = _fill(value, keep, p.axis, fill)
        elif p.per_row:  # one mask per index of axis 0 (per direction), equal kept counts
            value = np.stack([_slice(row, k, p.axis - 1, mode) for row, k in zip(value, keep)])
        else:
            value = _slice(value, keep, p.axis, mode)
        writer.set(node, p.input_index, value)
    if mode == "prune":
        for hooked in analysis.hooks:
            node = nodes[position[id(hooked)]]
            handler_for(node).rewrite(node, ctx)
    writer.commit()
    if mode == "prune":
        for name, (axis, keep, kind) in io_masks(analysis, removed).items():
            _resize_declared(model, name, axis, int(keep.sum()), kind)
        remove_dead(model)  # e.g. the Shape->Expand chain of a dropped all-zero LSTM state
        _refresh_value_info(model)
    return model


def _fill(value: np.ndarray, keep: np.ndarray, axis: int, fill: np.ndarray) -> np.ndarray:
    """The reference's removed slice of a quantized weight: its zero point (broadcast)."""
    value = value.copy()
    index = [slice(None)] * value.ndim
    index[axis] = ~keep
    value[tuple(index)] = np.broadcast_to(np.asarray(fill, dtype=value.dtype), value.shape)[tuple(index)]
    return value


def _slice(value: np.ndarray, keep: np.ndarray, axis: int, mode: str) -> np.ndarray:
    if mode == "prune":
        return np.compress(keep, value, axis=axis)
    value = value.copy()
    index = [slice(None)] * value.ndim
    index[axis] = ~keep
    value[tuple(index)] = 0
    return value


def io_masks(analysis: Analysis, removed: set[int]) -> dict[str, tuple[int, np.ndarray, str]]:
    """Graph inputs/outputs that shrink (only with --allow-io-change): name -> (axis, kept mask, kind)."""
    ctx = RewriteContext(analysis, removed, writer=None)
    out = {}
    for name, axis, labels, kind in analysis.io:
        keep = ctx.keep_mask(labels)
        if not keep.all():
            out[name] = (axis, keep, kind)
    return out


def _resize_declared(model, name, axis, size, kind) -> None:
    values = model.graph.input if kind == "input" else model.graph.output
    for vi in values:
        if vi.name == name and vi.type.tensor_type.HasField("shape"):
            dim = vi.type.tensor_type.shape.dim[axis]
            if dim.HasField("dim_value"):
                dim.dim_value = size


def _refresh_value_info(model: onnx.ModelProto) -> None:
    """Stale intermediate shapes would fail the full checker: drop them and re-infer."""
    had_value_info = len(model.graph.value_info) > 0
    del model.graph.value_info[:]
    clear_branch_value_info(model.graph)
    if not had_value_info:
        return
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
        model.graph.value_info.extend(inferred.graph.value_info)
    except Exception:
        pass  # the model stays valid without value_info; verification still runs
