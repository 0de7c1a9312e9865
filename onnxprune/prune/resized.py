"""Paired feeds for a model whose recurrent state a prune resized (`--allow-io-change`) and the
model it came from: the one place that decides how the two are fed and compared, so `prune`,
`bench`, `sweep` and `auto` measure alike.

From a prune's `resized_io` (name, kind, axis, old, new, kept): resized inputs are state, fed
zeros (the initial state callers feed) — the original its full state, the pruned model the kept
slice; a resized input and output that keep the same units are a pair the caller feeds back, so
the feeds run as one stream, each model carrying its own state; resized outputs are compared on
the original's kept units."""

from __future__ import annotations

import json

import numpy as np
import onnx

TAG = "onnxprune.resized_io"  # metadata of a search candidate: which state units it kept


def resized_io(analysis, removed: set) -> list[dict]:
    """The graph inputs/outputs that removing `removed` shrinks, as `PruneResult.resized_io`."""
    from .rewrite import io_masks

    return [{"name": name, "kind": kind, "axis": axis, "old": len(keep), "new": int(keep.sum()),
             "kept": np.flatnonzero(keep).tolist()}
            for name, (axis, keep, kind) in io_masks(analysis, removed).items()]


def tag(model: onnx.ModelProto, resized: list[dict]) -> onnx.ModelProto:
    """`model` (a candidate `auto` evaluates, never a written one) carrying its resized_io, so an
    evaluator or timer handed only the model feeds it its kept state (`tagged`)."""
    if resized:
        entry = next((p for p in model.metadata_props if p.key == TAG), None) or model.metadata_props.add()
        entry.key, entry.value = TAG, json.dumps(resized)
    return model


def tagged(model: onnx.ModelProto) -> list[dict] | None:
    """The resized_io `tag` put on `model`, or None."""
    entry = next((p for p in model.metadata_props if p.key == TAG), None)
    return json.loads(entry.value) if entry is not None else None


def kept_shapes(shapes: dict, model: onnx.ModelProto) -> dict:
    """Input shapes for a `tag`ged candidate: each resized input at its kept size."""
    out = {k: list(v) for k, v in shapes.items()}
    for r in tagged(model) or []:
        if r["kind"] == "input" and r["name"] in out:
            out[r["name"]][r["axis"]] = r["new"]
    return out


def state_plan(resized: list[dict] | None) -> tuple[dict, list]:
    """(io, pairs): the kept mask of each resized graph input/output (name -> (axis, mask)), and
    the state pairs a caller feeds back (input, output): a resized input and output on the same
    axis keeping the same units, an output named after the input first (`state -> stateN`,
    `h -> h_out`), else in graph order."""
    io, pairs = {}, []
    for r in resized or []:
        keep = np.zeros(r["old"], dtype=bool)
        keep[r["kept"]] = True
        io[r["name"]] = (r["axis"], keep)
    outs = [r for r in resized or [] if r["kind"] == "output"]
    for i in (r for r in resized or [] if r["kind"] == "input"):
        fits = [o for o in outs if o["axis"] == i["axis"] and o["kept"] == i["kept"]]
        fits.sort(key=lambda o: not o["name"].startswith(i["name"]))
        if fits:
            pairs.append((i["name"], fits[0]["name"]))
            outs.remove(fits[0])
    return io, pairs


def with_zero_state(feeds: list[dict], resized: list[dict] | None) -> list[dict]:
    """Feeds with the resized inputs (recurrent state: only state may be resized) set to zeros,
    the initial state callers feed (random state would be a state no caller's model reaches)."""
    names = {r["name"] for r in resized or [] if r["kind"] == "input"}
    return [{k: np.zeros_like(v) if k in names else v for k, v in f.items()} for f in feeds]


def kept_inputs(feed: dict, io: dict) -> dict:
    """The pruned model's feed: each resized input cut to its kept slice."""
    return {k: np.compress(io[k][1], v, axis=io[k][0]) if k in io else v for k, v in feed.items()}


def kept_outputs(names: list[str], outs: list, io: dict) -> list:
    """The original's outputs with each resized one cut to the pruned model's kept units."""
    return [np.compress(io[n][1], v, axis=io[n][0]) if n in io else v for n, v in zip(names, outs)]


def stream(session, names: list[str], feeds: list[dict], carry: list, io: dict | None = None):
    """`names` outputs on each feed, in order; from the second feed on each (input, output) pair
    of `carry` feeds the model its own previous state. `io` (a pruned model): its resized inputs
    get their kept slice of each feed (the state carried is its own, already that size)."""
    state = {}
    for feed in feeds:
        if io:
            feed = kept_inputs(feed, io)
        run = list(names) + [o for _, o in carry if o not in names]
        got = dict(zip(run, session.run(run, {**feed, **state})))
        state = {i: got[o] for i, o in carry}
        yield [got[n] for n in names]
