"""How close a result is to the ORIGINAL model, said after every prune, quantize and auto run.

`verify` proves a rewrite exact against its reference (the same weight changes at the original
shapes); it says nothing about how far pruning moved the model. This measures that with the
search's label-free `Fidelity` — on held-out `--data` when given, else on seeded inputs — prints
one line, warns below a threshold with the fix, and gates on `--min-snr` / `--max-drop`.
"""

from __future__ import annotations

import dataclasses
import math

import click

from ..errors import FidelityError
from ..prune.resized import state_plan, with_zero_state

WARN_SNR_DB = 10.0        # below this the outputs carry more distortion than a tenth of their signal
WARN_AGREEMENT = 90.0     # below this one decision in ten differs from the original's
EXAMPLES = 16
STREAM_STEPS = 64         # a streamed model with --data: 64 consecutive chunks (2 s of silero's 32 ms chunks)
BIG_WEIGHTS = 256 << 20


def eval_feeds(model, data, *, shapes: dict, values: dict | None, seed: int, count: int = EXAMPLES,
               stream: bool = False):
    """(feeds, where they come from): the held-out side of --data when --holdout split it, all
    of --data otherwise (said: those are the calibration files), else seeded random inputs.
    `stream` (a model whose state the caller carries): the first STREAM_STEPS examples in file
    order, consecutive chunks as a streaming caller feeds them, not examples spread over the files."""
    from ..core import external as weights
    from ..search.fidelity import make_feeds, spread
    from ..data import load_examples

    if weights.external_bytes(model) > BIG_WEIGHTS:  # every pass reads all the weights from disk
        count = min(count, 2)

    if data is not None:
        pick = (lambda exs: exs[:STREAM_STEPS]) if stream else (lambda exs: spread(exs, count))
        order = "consecutive " if stream else ""
        if data.subset == "calib":
            held = dataclasses.replace(data, subset="eval")
            examples = pick(list(load_examples(model, held)))
            where = f"{len(examples)} {order}held-out examples of --data {data.path} (files never calibrated on)"
        else:
            examples = pick(list(load_examples(model, data)))
            where = (f"{len(examples)} {order}examples of --data {data.path} (the calibration files; "
                     f"--holdout F measures on files held out)")
        if not examples:
            from ..data import DataError

            raise DataError(f"--data {data.path}: no examples to compare the result with the original on")
        return [ex.feeds for ex in examples], where
    feeds = make_feeds(model, shapes, count=count, seed=seed + 7919, values=values)
    return feeds, f"{len(feeds)} seeded random inputs (no --data: give --data for figures on real audio)"




def compare(original, result, feeds, where: str, resized: list[dict] | None = None) -> dict:
    """Fidelity of `result` against `original` on `feeds`, as reported under `fidelity`. With
    `resized` (state inputs/outputs a prune resized): state starts at zero, is carried from feed to
    feed through both models when it pairs with an output, and resized outputs are compared on
    their kept units."""
    from ..search.fidelity import Fidelity

    io, carry = state_plan(resized)
    if resized:
        feeds = with_zero_state(feeds, resized)
    fid = Fidelity(original, feeds, io=io, carry=carry)
    produced = {o for n in result.graph.node for o in n.output}
    if any(t not in produced for t in fid.taps.values()):  # e.g. quantized: compare the outputs themselves
        fid = Fidelity(original, feeds, logits=False, io=io, carry=carry)
    detail = fid.detail(result)
    detail.pop("nmse", None)
    detail["on"] = where
    if resized:
        sizes = {r["name"]: (r["new"], r["old"]) for r in resized}
        for o in detail["outputs"]:
            if o["name"] in sizes:
                o["kept_units"] = list(sizes[o["name"]])
        detail["state"] = {"zero_initial": [r["name"] for r in resized if r["kind"] == "input"],
                           "carried": [list(p) for p in carry], "steps": len(feeds) if carry else 1}
    detail["verdict"] = verdict(detail)
    return detail


def against_original(original, result, *, data, shapes: dict, values: dict | None, seed: int, gated: bool,
                     feeds=None, resized: list[dict] | None = None) -> dict:
    """eval_feeds + compare. A model the measurement cannot run (inputs seeded feeds cannot fill)
    is said, not fatal, unless --min-snr/--max-drop need the figure; bad --data stays an error.
    `resized`: the prune's resized_io (--allow-io-change), see `compare`."""
    from ..data import DataError
    from ..errors import first_line

    try:
        if feeds is None:
            feeds, where = eval_feeds(original, data, shapes=shapes, values=values, seed=seed,
                                      stream=bool(state_plan(resized)[1]))
        else:
            feeds, where = feeds
        return compare(original, result, feeds, where, resized)
    except DataError:
        raise
    except Exception as exc:
        if gated:
            raise FidelityError(f"cannot measure the result against the original ({first_line(exc)}), which "
                                f"--min-snr/--max-drop need; nothing written") from exc
        return {"on": None, "verdict": "unmeasured", "error": first_line(exc), "outputs": []}


def _snr(x: float) -> str:
    return "identical" if x == math.inf else f"{x:.1f} dB"


def _classifier(detail: dict):
    return next((o for o in detail["outputs"] if "top1_agreement" in o), None)


def verdict(detail: dict) -> str:
    """'identical', 'close', 'changed' or 'far' (below WARN_SNR_DB or WARN_AGREEMENT)."""
    snr, cls = detail["snr_db"], _classifier(detail)
    agree = cls["top1_agreement"] if cls else 100.0
    if snr == math.inf:
        return "identical"
    if snr < WARN_SNR_DB or agree < WARN_AGREEMENT:
        return "far"
    return "close" if snr >= 20.0 and agree >= 99.0 else "changed"


WORDS = {"identical": "identical to the original", "close": "close to the original",
         "changed": "noticeably changed from the original", "far": "FAR from the original: it no longer behaves like it"}


def line(detail: dict) -> str:
    """One line: per output, top-1 agreement (classifier outputs), SNR and cosine."""
    if detail["verdict"] == "unmeasured":
        return f"not measured against the original ({detail['error']})"
    parts = []
    for o in detail["outputs"]:
        bits = [f"top-1 {o['top1_agreement']:.1f}%"] if "top1_agreement" in o else []
        bits.append(f"SNR {_snr(o['snr_db'])}")
        if o["cosine"] is not None:
            bits.append(f"cosine {o['cosine']:.3f}")
        parts.append(f"{o['name']} " + ", ".join(bits))
    return (f"vs original on {detail['on']}{state_note(detail)}: " + "; ".join(parts)
            + f" => {WORDS[detail['verdict']]}")


def state_note(detail: dict) -> str:
    """How resized state was fed and compared, said where the figures are."""
    state = detail.get("state")
    if not state:
        return ""
    bits = []
    if state["carried"]:
        pairs = ", ".join(f"{i} -> {o}" for i, o in state["carried"])
        bits.append(f"run as one stream of {state['steps']} calls carrying state ({pairs}; each model its own, "
                    f"from a zero initial state as callers start)")
    else:
        bits.append(f"state input(s) {', '.join(state['zero_initial'])} fed zeros (the initial state callers feed)")
    kept = [o for o in detail["outputs"] if "kept_units" in o]
    if kept:
        bits.append("resized output(s) compared on their kept units: "
                    + ", ".join(f"{o['name']} {o['kept_units'][0]} of {o['kept_units'][1]}" for o in kept))
    return "; " + "; ".join(bits)


def warning(detail: dict, *, data_given: bool, criterion: str | None = None, compensate: str | None = None,
            command: str = "prune") -> str | None:
    """The fix for a result far from the original, or None."""
    if detail["verdict"] != "far":
        return None
    cls = _classifier(detail)
    why = [f"SNR {_snr(detail['snr_db'])} < {WARN_SNR_DB:g} dB"] if detail["snr_db"] < WARN_SNR_DB else []
    if cls and cls["top1_agreement"] < WARN_AGREEMENT:
        why.append(f"top-1 agreement {cls['top1_agreement']:.1f}% < {WARN_AGREEMENT:g}%")
    if command == "quantize":
        fix = "try --per-channel, --calibration entropy or percentile, --exclude the most sensitive nodes, or dynamic mode"
    else:
        steps = []
        if not data_given:
            steps.append("--data DIR (real audio)")
        if criterion not in ("reconstruction", "activation"):
            steps.append("--criterion reconstruction")
        if compensate != "lstsq":
            steps.append("--compensate lstsq")
        fix = ("rank channels on data and refit what is left: " + " ".join(steps) if steps else
               "prune less (a lower --ratio) or let `onnxprune auto` choose widths within a budget")
    return f"warning: the result is far from the original ({'; '.join(why)}); {fix}"


def gate(detail: dict, *, min_snr: float | None, max_drop: float | None) -> None:
    """--min-snr / --max-drop: refuse (exit 1, nothing written) a result outside them."""
    if detail["verdict"] == "unmeasured":
        return
    failed = []
    if min_snr is not None and detail["snr_db"] < min_snr:
        failed.append(f"SNR {_snr(detail['snr_db'])} < --min-snr {min_snr:g}")
    cls = _classifier(detail)
    if max_drop is not None:
        agree = cls["top1_agreement"] if cls else detail["top1_agreement"]
        if 100.0 - agree > max_drop + 1e-9:
            failed.append(f"top-1 agreement {agree:.1f}% is {100.0 - agree:.1f} points below the original's, "
                          f"more than --max-drop {max_drop:g}")
    if failed:
        raise FidelityError("; ".join(failed) + f" (on {detail['on']}); nothing written")


def check_gates(min_snr: float | None, max_drop: float | None) -> None:
    from ..errors import UsageError

    if max_drop is not None and not 0.0 <= max_drop <= 100.0:
        raise UsageError(f"--max-drop {max_drop:g} is in points of top-1 agreement: use 0..100")


def report(detail: dict, *, data_given: bool, **fix) -> None:
    """Print the warning (if any); the closing line is printed by `closing`."""
    text = warning(detail, data_given=data_given, **fix)
    if text:
        click.echo(text)


def closing(detail: dict) -> None:
    click.echo("fidelity: " + line(detail))
