"""Depth candidates scored by measured sensitivity: each removable block dropped alone, the outputs
compared with the original's by search/fidelity (nmse, SNR, top-1 agreement), for `inspect
--block-sensitivity`. `auto --depth` searches blocks together with widths and ranks in search/joint.py
(which holds the latency model's per-block and per-factorized-layer entries)."""

from __future__ import annotations

import onnx

from ..core.cost import count_macs
from ..core.graph import GraphIndex
from ..core.shapes import infer_value_shapes, input_shapes
from ..prune.depth import drop_blocks, model_blocks
from .fidelity import Fidelity, make_feeds


def block_sensitivity(model: onnx.ModelProto, *, shapes: dict | None = None, values: dict | None = None,
                      feeds: list[dict] | None = None, count: int = 16, seed: int = 0, data=None) -> list[dict]:
    """One row per candidate Add (Block.to_dict), with for removable ones the MACs its removal
    saves and the fidelity metrics of the model without it (one forward pass per feed each)."""
    fed = input_shapes(GraphIndex.build(model), shapes or {})
    blocks = model_blocks(model, shapes, values)
    rows = [b.to_dict() for b in blocks]
    if not any(b.removable for b in blocks):
        return rows
    if feeds is None:
        feeds = make_feeds(model, fed, count=count, seed=seed, data=data, part=0)
    evaluate = Fidelity(model, feeds)
    base = _macs(model, fed, values)
    for block, row in zip(blocks, rows):
        if block.removable:
            dropped = drop_blocks(model, [block])
            row.update(macs_saved=base - _macs(dropped, fed, values), **evaluate(dropped))
    return rows


def least_sensitive(rows: list[dict], n: int) -> list[str]:
    """Names of the `n` removable blocks with the lowest measured nmse."""
    ok = sorted((r for r in rows if r["removable"]), key=lambda r: (r["nmse"], r["name"]))
    return [r["name"] for r in ok[:n]]


def _macs(model, fed, values) -> int:
    try:
        return count_macs(model, infer_value_shapes(model, fed, values))
    except Exception:
        return 0
