"""`If` branches as plain graphs.

Two jobs need a branch's values as if they were the main graph's: shape probing (onnx shape
inference knows little inside branches, and onnxruntime cannot expose a branch's values as
outputs) and verification (seeded inputs take one branch; every other branch holding pruned
channels must be checked too). Both inline Ifs along an execution *path*: the branch each `If`
takes on given inputs, except for the Ifs we force. Forcing one branch at a time, with the Ifs
around it resolved by evaluation, reaches branches that need consistent inner choices (the
rank checks TorchScript wraps around every LSTM) where "inline everything to then" would not.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import onnx

from . import external
from ..errors import first_line

BRANCHES = ("then_branch", "else_branch")


def has_if(model: onnx.ModelProto) -> bool:
    return any(n.op_type == "If" for n in model.graph.node)


def if_key(node: onnx.NodeProto) -> str:
    """Ifs are named by their first output (unique in a valid model; node names may be empty)."""
    return next((o for o in node.output if o), node.name)


def all_ifs(graph: onnx.GraphProto, parents: tuple = ()):
    """(If node, its chain of enclosing (If key, branch)) for every If at any depth."""
    for node in graph.node:
        if node.op_type != "If":
            continue
        yield node, parents
        for attr in node.attribute:
            if attr.name in BRANCHES:
                yield from all_ifs(attr.g, parents + ((if_key(node), attr.name),))


def inline_choices(model: onnx.ModelProto, choice: dict[str, str]) -> onnx.ModelProto:
    """A copy with each If whose key is in `choice` replaced by that branch (nested ones too,
    as they surface); Ifs without a choice stay."""
    model = copy.deepcopy(model)
    while _inline_top(model.graph, choice):
        pass
    return model


def trace(model: onnx.ModelProto, feeds: dict, force: dict[str, str] | None = None):
    """Inline every If along the path `feeds` take (Ifs in `force` take the forced branch).
    Returns the If-free model and the branch taken by each If met. Raises what onnxruntime
    raises when the path cannot run on these inputs."""
    force = force or {}
    model = copy.deepcopy(model)
    taken: dict[str, str] = {}
    while True:
        ifs = [n for n in model.graph.node if n.op_type == "If"]
        if not ifs:
            return model, taken
        conds = _evaluate(model, feeds, [n.input[0] for n in ifs if if_key(n) not in force])
        for n in ifs:
            key = if_key(n)
            taken[key] = force.get(key) or ("then_branch" if bool(np.asarray(conds[n.input[0]]).reshape(-1)[0])
                                            else "else_branch")
        _inline_top(model.graph, taken)


@dataclass
class Paths:
    """Forced choices that reach every branch reachable on the given inputs; branches that
    could not run, with onnxruntime's reason."""

    forces: list[dict[str, str]] = field(default_factory=list)
    models: list[onnx.ModelProto] = field(default_factory=list)  # the inlined model of each path
    failed: dict[tuple[str, str], str] = field(default_factory=dict)


def explore(model: onnx.ModelProto, feeds: dict) -> Paths:
    """Natural path first, then one forced path per branch not yet covered (its enclosing Ifs
    forced onto the way to it). Cost: one inlining + a few onnxruntime runs per path."""
    paths = Paths()
    covered: set[tuple[str, str]] = set()
    targets = [(if_key(n), b, parents) for n, parents in all_ifs(model.graph) for b in BRANCHES]
    for key, branch, parents in [(None, None, ())] + targets:
        if key is not None and ((key, branch) in covered or any(p in paths.failed for p in parents)):
            continue
        force = dict(parents) | ({key: branch} if key else {})
        try:
            inlined, taken = trace(model, feeds, force)
        except Exception as exc:
            paths.failed[(key, branch) if key else ("", "natural")] = first_line(exc, 160)
            continue
        try:
            from .runtime import make_session

            make_session(inlined, optimization="disable", quiet=True).run(None, feeds)
        except Exception as exc:
            if key is not None:
                paths.failed[(key, branch)] = first_line(exc, 160)
            continue
        covered.update(taken.items())
        # the natural path is recorded by the choices it made: verification replays it with other
        # seeds, whose data might otherwise take another branch and leave this one unchecked
        paths.forces.append(force if key is not None else dict(taken))
        paths.models.append(inlined)
    return paths


def _evaluate(model: onnx.ModelProto, feeds: dict, names: list[str]) -> dict:
    from .runtime import make_session

    inits = {t.name: t for t in model.graph.initializer}
    values = {n: feeds[n] for n in names if n in feeds}
    values.update({n: external.read(inits[n]) for n in names if n in inits and n not in values})
    wanted = [n for n in dict.fromkeys(names) if n not in values]
    if wanted:
        probe = copy.deepcopy(model)
        del probe.graph.value_info[:]
        known = {o.name for o in probe.graph.output}
        probe.graph.output.extend(onnx.ValueInfoProto(name=n) for n in wanted if n not in known)
        sess = make_session(probe, optimization="disable", quiet=True)  # evaluated once: optimising costs more than it saves
        values.update(zip(wanted, sess.run(wanted, {k: v for k, v in feeds.items()
                                                     if k in {i.name for i in sess.get_inputs()}})))
    return values


def _inline_top(graph: onnx.GraphProto, choice: dict[str, str]) -> bool:
    """Replace the top-level Ifs that have a choice by their chosen branch; True if any was."""
    nodes: list[onnx.NodeProto] = []
    changed = False
    for node in graph.node:
        key = if_key(node) if node.op_type == "If" else None
        if key not in choice:
            nodes.append(node)
            continue
        body = next(a.g for a in node.attribute if a.name == choice[key])
        graph.initializer.extend(body.initializer)
        nodes.extend(body.node)
        for out, res in zip(node.output, body.output):
            if out:
                nodes.append(onnx.helper.make_node("Identity", [res.name], [out], name=f"{out}__inlined"))
        changed = True
    del graph.node[:]
    graph.node.extend(nodes)
    if changed:
        del graph.value_info[:]
    return changed


def clear_branch_value_info(graph: onnx.GraphProto) -> None:
    """Drop intermediate shapes inside every subgraph: exporters leave some that contradict
    concrete inputs, and pruning makes others stale (the main graph's are refreshed apart)."""
    from .graph import subgraphs

    for node in graph.node:
        for sub in subgraphs(node):
            del sub.value_info[:]
            clear_branch_value_info(sub)
