"""No silent no-ops: an option that would change nothing is an error (exit 2) or a printed note,
decided per case; and --data, when given, is used (dims from its examples, the data-aware default
criterion)."""

from __future__ import annotations

import difflib

import click

from ..errors import UsageError

DATA_DEFAULT = "reconstruction"


def _given(name: str) -> bool:
    """Was option `name` typed on the command line (not its default)?"""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return False
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def default_criterion(criterion: str | None, data, compensate: str = "none") -> str:
    """l1 without --data; with --data and no --criterion the data-aware default, said."""
    if criterion is not None:
        return criterion
    if data is None:
        return "l1"
    extra = "" if compensate == "lstsq" else "; add --compensate lstsq to refit what is left"
    click.echo(f"criterion: {DATA_DEFAULT} (the default with --data: channels ranked by how much of the next "
               f"layer's output they carry on the data; --criterion l1 ranks by weights instead{extra})")
    return DATA_DEFAULT


def check_exclude(model, exclude) -> None:
    """A misspelt --exclude leaves the node in the plan: refuse names the model does not have."""
    if not exclude or not model.graph.node:  # an unreadable model is the loader's to report
        return
    known: set[str] = set()

    def collect(graph):
        known.update(t.name for t in graph.initializer)
        for n in graph.node:
            known.update([n.name, *n.output])
            for a in n.attribute:
                for sub in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                    collect(sub)

    collect(model.graph)
    known.discard("")
    for name in exclude:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else " (onnxprune inspect -v lists the node names)"
            raise UsageError(f"--exclude {name}: no node, output or initializer of that name in the model{hint}")


def check_plan_options(plan) -> None:
    """--plan fixes the kept channels: options that choose them are refused; a plan recorded with
    compensation is not replayed without it unless --compensate none is explicit."""
    if plan is None:
        return
    ignored = [f"--{n.replace('_', '-')}" for n in ("ratio", "criterion", "global_ranking", "round_to") if _given(n)]
    ignored = [o.replace("--global-ranking", "--global") for o in ignored]
    if ignored:
        raise UsageError(f"--plan fixes the kept channels, so {', '.join(ignored)} would be ignored: drop "
                         f"{'it' if len(ignored) == 1 else 'them'}")
    recorded = plan.meta.get("compensate") or "none"
    ctx = click.get_current_context(silent=True)
    compensate = ctx.params.get("compensate") if ctx else None
    if recorded != "none" and compensate == "none" and not _given("compensate"):
        raise UsageError(f"the plan was recorded with --compensate {recorded}: replaying it without gives a different "
                         f"model; pass --data DIR --compensate {recorded} (or --compensate none to drop the refit)")


def shapes_from_data(model, data, shapes) -> tuple:
    """With --data, symbolic input dims not given by --shape come from its first example (said)."""
    if data is None:
        return tuple(shapes)
    from ..data import load_examples
    from ..core.shapes import parse_shape_specs

    given = parse_shape_specs(shapes)
    init = {t.name for t in model.graph.initializer}
    symbolic = []
    for vi in model.graph.input:
        if vi.name in init or vi.name in given or not vi.type.HasField("tensor_type"):
            continue
        tt = vi.type.tensor_type
        if not tt.HasField("shape") or any(not d.HasField("dim_value") or d.dim_value <= 0 for d in tt.shape.dim):
            symbolic.append(vi)
    if not symbolic:
        return tuple(shapes)
    first = next(iter(load_examples(model, data)), None)
    if first is None:
        return tuple(shapes)
    added = []
    for vi in symbolic:
        if vi.name in first.feeds:
            dims = list(first.feeds[vi.name].shape)
            added.append(f"{vi.name}:{','.join(map(str, dims))}")
    if added:
        click.echo(f"shapes: {' '.join(added)} (symbolic dims from the first --data example, {first.source}; "
                   f"--shape overrides)")
    return tuple(shapes) + tuple(added)


def check_auto_state(model, shapes, exclude, option: str) -> None:
    """`auto --allow-io-change` with `option` (--task, --head, --depth, --low-rank, --recover) on a
    model whose state input would shrink: each candidate keeps other state units, which only the
    default fidelity evaluation feeds it (its kept slice, over a stream); say so and what works."""
    from ..analysis.atoms import FIXED
    from ..api import analyze

    a = analyze(model, shapes=shapes, exclude=exclude, allow_io_change=True)
    prunable = {c for g in a.groups if g.prunable for c in g.classes}
    shrinking = [name for name, _, labels, kind in a.io if kind == "input"
                 and any(x != FIXED and a.atoms.find(x) in prunable for x in labels.reshape(-1).tolist())]
    if shrinking:
        raise UsageError(f"auto --allow-io-change {option}: state input '{shrinking[0]}' would shrink, and {option} "
                         f"cannot yet feed each candidate its own kept state units; drop {option} (fidelity "
                         f"measures the kept state over a stream), or drop --allow-io-change")


def nothing_pruned(result, *, round_to: int, ratio: float, plan_given: bool) -> bool:
    """True when the output equals the input: says why; --round-to larger than every prunable
    group is an error (it can only ever keep everything); a group it alone keeps whole is a note."""
    groups = [g for g in result.groups if g["prunable"]]
    untouched = [g for g in groups if g["kept"] == g["size"]]
    if not plan_given and ratio > 0 and round_to > 1:
        from ..prune.plan import kept_count

        by_round = [g for g in untouched if kept_count(g["size"], ratio, 1) < g["size"]]
        if by_round and len(by_round) == len(groups):
            largest = max(g["size"] for g in groups)
            raise UsageError(f"--round-to {round_to} keeps every prunable group whole (largest {largest} channels): "
                             f"nothing would be pruned; use --round-to below {largest}")
        if by_round:
            click.echo(f"note: --round-to {round_to} keeps {len(by_round)} group(s) whole: "
                       + ", ".join(f"{g['name']} ({g['size']})" for g in by_round[:5]))
    changed = any(layer["channels_after"] != layer["channels_before"] for layer in result.layers) or \
        bool(getattr(result, "steps", None))  # blocks dropped or weights factorized
    if changed:
        return False
    if not groups:
        blocked = [g for g in result.groups if g["blocked_by"]]
        why = (f"no group is prunable (first blocked: {blocked[0]['name']}: {blocked[0]['blocked_by'][0]}); "
               f"see onnxprune inspect -v") if blocked else "the model has no prunable group"
    elif ratio == 0 and not plan_given:
        why = "--ratio 0"
    else:
        why = "every group kept all its channels (the ratio is below one step of --round-to)"
    click.echo(f"nothing pruned: {why}; the output is an unchanged copy")
    return True


def criterion_notes(result, criterion: str) -> None:
    """--criterion bn where no group has a BatchNormalization to read: refused, not silently l1."""
    if criterion != "bn":
        return
    groups = [g for g in result.groups if g["prunable"]]
    fallback = [g for g in groups if g.get("criterion") == "l1"]
    if groups and len(fallback) == len(groups):
        has_bn = any(n.op_type == "BatchNormalization" for n in result.reference.graph.node) or \
            any(n.op_type == "BatchNormalization" for n in result.analysis.model.graph.node)
        what = "no prunable group feeds a BatchNormalization" if has_bn else "the model has no BatchNormalization"
        raise UsageError(f"--criterion bn: {what}, so it would rank exactly as l1; use --criterion l1 "
                         f"(or a data-aware criterion with --data)")
    if fallback:
        click.echo(f"note: --criterion bn ranked {len(fallback)} of {len(groups)} groups by l1 (no BatchNormalization "
                   f"scale after them): " + ", ".join(g["name"] for g in fallback[:5]))
