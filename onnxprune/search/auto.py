"""Automatic budgeted pruning: per-group widths that reach a goal (speedup, MACs or parameters)
while the evaluation metric drops by at most a budget.

Greedy: from the full model, repeatedly take the width step with the best goal gain per unit of
sensitivity (distortion added, from `sensitivity.py`); build the candidate, (compensate,)
evaluate it on held-out feeds; if the metric fell by more than the budget, step back and freeze
that group. Stops when the goal is met (a speedup only once *measured* on the EP), when no step
is left, or at `max_evals` / `time_limit`, keeping the best result so far. The chosen plan then
goes through `prune`, which verifies it, so `prune --plan` replays it to the same bytes.
With `depth` and/or `low_rank`, one greedy chooses among width steps, residual-block removals
and low-rank ranks instead (search/joint.py).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import onnx

from ..core import external
from ..core.io import fingerprint
from ..prune.pipeline import PruneConfig, PruneResult, prune
from ..errors import UsageError
from ..prune.plan import Plan
from ..prune.resized import state_plan, tag, with_zero_state
from .lookahead import Lookahead, candidate_metrics
from .sensitivity import Sensitivity
from .widths import WidthSpace

GOALS = ("speedup", "macs", "params")
MEASURE_EVERY = 5


@dataclass(frozen=True)
class AutoConfig:
    """What `auto` looks for (goal, budget) and how it judges (feeds, latency model, caps); how
    candidates are pruned is the PruneConfig beside it. Validated once, on construction."""
    goal: str
    target: float
    max_drop: float | None = 1.0      # points of `metric` below the original's
    min_snr: float | None = None      # dB of the outputs against the original's
    metric: str = "top1_agreement"
    calib: int = 16                   # feeds for sensitivity
    n_eval: int = 32                  # held-out feeds for the default (fidelity) evaluation
    calib_examples: int = 128         # calibration examples for data-aware criteria / compensation
    latency: str | object = "measured"  # "measured", "macs" or an object with LatencyModel's interface
    provider: str = "CPUExecutionProvider"
    threads: int = 1
    runs: int = 100
    cache: bool = True
    max_evals: int = 200
    time_limit: float | None = None
    depth: bool = False               # also drop residual blocks (search/joint.py: one search with widths)
    low_rank: bool = False            # also factorize layers where that measured faster (search/joint.py)
    block_repair: str = "none"        # none | mean: a dropped block leaves y = x + E[f(x)] (prune/depth.py)

    def __post_init__(self):
        check_goal(self.goal, self.target)
        if self.max_drop is not None and self.max_drop < 0:
            raise UsageError(f"--max-drop {self.max_drop} must be >= 0")
        for flag, value in (("--calib", self.calib), ("--eval", self.n_eval), ("--max-evals", self.max_evals),
                            ("--runs", self.runs)):
            if value < 1:
                raise UsageError(f"{flag} {value} must be at least 1")
        if self.block_repair not in ("none", "mean"):
            raise UsageError(f"unknown block repair '{self.block_repair}' (choose from none, mean)")
        if self.time_limit is not None and self.time_limit <= 0:
            raise UsageError(f"--time-limit {self.time_limit} must be positive")


def check_goal(goal: str, target: float) -> None:
    """speedup: a factor > 1; macs/params: the fraction of the original to keep, 0 < F < 1."""
    if goal not in GOALS:
        raise UsageError(f"unknown goal '{goal}' (choose from {', '.join(GOALS)})")
    if goal == "speedup" and not target > 1.0:
        raise UsageError(f"--target-speedup {target} must be greater than 1 (e.g. 1.5 for 1.5x faster)")
    if goal != "speedup" and not 0.0 < target < 1.0:
        raise UsageError(f"--target-{goal} {target} is the fraction of the original's {goal} to keep: use 0 < F < 1")


@dataclass
class SearchResult:
    keep: dict[str, int]
    trajectory: list[dict]
    reached: bool
    stop_reason: str
    achieved: float | None          # goal value of `keep`: speedup (measured) or kept fraction
    evals: int = 0
    measurements: int = 0
    baseline: float | None = None   # the original's metric on the evaluation feeds
    metric: str = "top1_agreement"
    max_drop: float | None = None
    min_snr: float | None = None
    speculative: dict | None = None  # with an executor: candidates evaluated ahead, and how many went unused


@dataclass
class _State:
    space: WidthSpace
    goal: str
    target: float
    sens: Sensitivity
    latency: object = None
    correction: float = 1.0          # measured / predicted speedup at the last measurement
    since_measured: int = 0
    frozen: set = field(default_factory=set)


def search(space: WidthSpace, goal: str, target: float, *, sensitivity: Sensitivity, evaluate=None,
           latency=None, max_drop: float | None = None, metric: str = "top1_agreement", min_snr: float | None = None,
           max_evals: int = 200, time_limit: float | None = None, compensate=None,
           progress=None, baseline: float | None = None, executor=None) -> SearchResult:
    """`evaluate(model) -> metrics` is only called when a budget is set: `max_drop` (points of
    `metric` below the original's) and/or `min_snr` (dB of the outputs vs the original's);
    `latency` (latency_model.LatencyModel or MacsLatency) is required for the speedup goal;
    `compensate(model, plan) -> model` runs on each candidate before evaluation (hook); `baseline`:
    the original's metric when `space` holds a model already pruned otherwise (auto --depth);
    `executor` (core.executor) evaluates candidates ahead in parallel (`Lookahead`)."""
    check_goal(goal, target)
    if goal == "speedup" and latency is None:
        raise UsageError("the speedup goal needs a latency model")
    st = _State(space, goal, target, sensitivity, latency)
    start, keep = time.perf_counter(), space.full
    budget = max_drop is not None or min_snr is not None
    base = (baseline if baseline is not None else evaluate(space.model)[metric]) if budget else None
    res = SearchResult(dict(keep), [], False, "", None, evals=1 if base is not None else 0, baseline=base,
                       metric=metric, max_drop=max_drop, min_snr=min_snr)
    base_stats = space.stats(keep)
    measured = None
    ahead = Lookahead(executor, space, evaluate, compensate) if executor is not None and budget else None
    while True:
        if res.evals >= max_evals:
            res.stop_reason = f"--max-evals {max_evals} reached"
            break
        if time_limit is not None and time.perf_counter() - start > time_limit:
            res.stop_reason = f"--time-limit {time_limit:g}s reached"
            break
        step = _best_step(st, keep)
        if step is None:
            res.stop_reason = "no width step left within the budget"
            break
        name, width = step
        trial = dict(keep, **{name: width})
        entry = {"step": len(res.trajectory) + 1, "group": name, "kept": width, "size": space.sizes[name]}
        stats = space.stats(trial)
        entry.update(macs=stats["macs"] / base_stats["macs"], params=stats["params"] / base_stats["params"])
        if latency is not None:
            entry["predicted_speedup"] = latency.base_ms / latency.predict(trial)
        if budget:
            metrics = ahead.metrics(trial, keep, lambda: _ranked_steps(st, keep)) if ahead else \
                candidate_metrics((space, evaluate, compensate), trial)
            res.evals += 1
            entry.update(metrics={k: round(v, 4) for k, v in metrics.items()}, drop=round(base - metrics[metric], 4))
            entry["accepted"] = (max_drop is None or entry["drop"] <= max_drop + 1e-9) and \
                (min_snr is None or metrics["snr_db"] >= min_snr)
        else:
            entry["accepted"] = True
        done = False
        if not entry["accepted"]:
            st.frozen.add(name)  # step back: this group stays at its last good width
        else:
            keep = trial
            done, measured = _goal_met(st, keep, entry, res)
            res.keep = dict(keep)
        res.trajectory.append(entry)
        if progress:
            progress(entry)
        if entry["accepted"] and done:
            res.reached, res.stop_reason = True, "target reached"
            break
    res.achieved = _achieved(st, res.keep, base_stats, measured, res)
    if ahead:
        res.speculative = {"evaluated": ahead.evaluated, "unused": ahead.evaluated - res.evals + (base is not None)}
    return res


def _goal_met(st: _State, keep, entry, res) -> tuple[bool, float | None]:
    """MACs/params: exact. Speedup: measured once the prediction (scaled by the last measured /
    predicted ratio) reaches the target, or every MEASURE_EVERY accepted steps anyway (a noisy
    latency model must not hide that the target was reached); a hit is confirmed by a second
    measurement, the two averaged."""
    if st.goal != "speedup":
        return entry[st.goal] <= st.target, None
    st.since_measured += 1
    predicted = entry["predicted_speedup"] * st.correction
    if predicted < st.target and st.since_measured < MEASURE_EVERY:
        return False, None
    with external.scratch():
        model = st.space.build(keep)
        measured = st.latency.measure_speedup(model)
        res.measurements += 1
        if measured >= st.target:
            measured = (measured + st.latency.measure_speedup(model)) / 2
            res.measurements += 1
    st.correction, st.since_measured = measured / entry["predicted_speedup"], 0
    entry["measured_speedup"] = round(measured, 4)
    return measured >= st.target, measured


def _achieved(st: _State, keep, base_stats, measured, res) -> float | None:
    if st.goal != "speedup":
        return st.space.stats(keep)[st.goal] / base_stats[st.goal]
    if measured is not None and res.trajectory and res.trajectory[-1].get("measured_speedup") == round(measured, 4):
        return measured
    res.measurements += 1
    with external.scratch():
        return st.latency.measure_speedup(st.space.build(keep))


def _best_step(st: _State, keep) -> tuple[str, int] | None:
    """The (group, width) step with the best goal gain per unit of added distortion."""
    ranked = _ranked_steps(st, keep)
    return ranked[0] if ranked else None


def _ranked_steps(st: _State, keep) -> list[tuple[str, int]]:
    """Each unfrozen group's best step, best first (ties: group order). After a rejected step the
    next `_best_step` is the next entry here (only the frozen set changed), which is what lets an
    executor evaluate several candidates at once and still follow the sequential path exactly."""
    found = []
    current = st.space.stats(keep)[st.goal] if st.goal != "speedup" else None
    for order, name in enumerate(st.space.groups):
        if name in st.frozen:
            continue
        lower = [w for w in st.space.levels(name) if w < keep[name]]
        if not lower:
            continue
        # MACs/params are exact, so one step suffices; latency savings are noisy per width, so
        # a jump of up to 4 levels (a quarter of the group) may be taken: a step that saves
        # nothing alone (alignment) can lead to one that does
        options = lower[:1] if st.goal != "speedup" else lower[:4]
        d0 = st.sens.at(name, keep[name])
        best, best_key = None, None
        for width in options:
            if st.goal == "speedup":
                gain = st.latency.saved(name, width) - st.latency.saved(name, keep[name]) \
                    if hasattr(st.latency, "saved") else \
                    st.latency.predict(keep) - st.latency.predict(dict(keep, **{name: width}))
            else:
                gain = current - st.space.stats(dict(keep, **{name: width}))[st.goal]
            if gain <= 0:
                continue
            cost = max(st.sens.at(name, width) - d0, 1e-12)
            key = (gain / cost, gain)
            if best_key is None or key > best_key:
                best, best_key = width, key
        if best is not None:
            found.append((best_key, -order, name, best))
    found.sort(reverse=True)
    return [(name, width) for _, _, name, width in found]


@dataclass
class AutoResult:
    result: PruneResult
    search: SearchResult
    goal: str
    target: float
    metrics: dict
    sensitivity: dict
    latency: dict | None
    measured_speedup: float | None = None
    depth: dict | None = None  # auto --depth: the blocks dropped before widths, and how they were chosen

    @property
    def plan(self) -> Plan:
        return self.result.plan

    def report(self) -> dict:
        s = self.search
        return {"goal": self.goal, "target": self.target, "reached": s.reached, "achieved": s.achieved,
                "stop_reason": s.stop_reason, "metric": s.metric, "baseline": s.baseline, "max_drop": s.max_drop, "min_snr": s.min_snr,
                "evaluations": s.evals, "latency_measurements": s.measurements,
                "final_metrics": self.metrics, "trajectory": s.trajectory, "widths": s.keep,
                "measured_speedup": self.measured_speedup, "sensitivity": self.sensitivity,
                "latency_model": self.latency, "prune": self.result.report(),
                **({"depth": self.depth} if self.depth is not None else {}),
                **({"evaluated_ahead": s.speculative} if s.speculative else {})}


def finish(model: onnx.ModelProto, space: WidthSpace, found: SearchResult, *, goal: str, target: float,
           sensitivity: Sensitivity, evaluate=None, latency=None, verify: bool = True, blocks=()) -> AutoResult:
    """Run the chosen widths through `prune` (verified), evaluate the result once more. `blocks`:
    dropped before widths (auto --depth): `space` then holds the model without them, `model` the original."""
    plan = space.plan(found.keep)
    if blocks:
        plan.blocks, plan.fingerprint = list(blocks), fingerprint(model)
    plan.meta.update({"auto": {"goal": goal, "target": target, "reached": found.reached}})
    plan.meta.update({"compensate": space.compensate})
    result = prune(model, config=replace(space.config, plan=plan, verify=verify))
    metrics = evaluate(candidate(result)) if evaluate is not None else {}
    return AutoResult(result, found, goal, target, metrics, sensitivity.to_dict(),
                      latency.to_dict() if latency is not None else None)


def candidate(result: PruneResult) -> onnx.ModelProto:
    """The result as the search's evaluators and timers take it: tagged with its resized state
    (a copy; the model written stays untagged)."""
    if not result.resized_io:
        return result.model
    copy = onnx.ModelProto()
    copy.CopyFrom(result.model)
    return tag(copy, result.resized_io)


def state_feeds(space: WidthSpace, feeds: list[dict]) -> tuple[list[dict], list]:
    """(feeds, state pairs carried) for fidelity when --allow-io-change lets state shrink: the
    narrowest candidate's resized inputs are fed zeros, the initial state callers feed (each
    candidate then gets its own kept slice of it), and a state input/output pair is carried call
    to call, as `prune` measures it (prune.resized)."""
    if not space.config.allow_io_change:
        return feeds, []
    narrowest = space.resized({n: space.levels(n)[-1] for n in space.groups})
    if not any(r["kind"] == "input" for r in narrowest):
        return feeds, []
    return with_zero_state(feeds, narrowest), state_plan(narrowest)[1]


def allocate_plan(model: onnx.ModelProto, config: PruneConfig, *, data=None, feeds: int = 16) -> Plan:
    """`prune --allocate sensitivity`: per-group widths whose total MACs are at most those of a
    uniform `config.ratio`, taking channels from the least sensitive groups first (no budget loop)."""
    from .fidelity import Fidelity, make_feeds
    from .sensitivity import measure_sensitivity

    ratio, seed = config.ratio, config.seed
    space = WidthSpace(model, config)
    if not space.groups or ratio == 0.0:
        return space.plan(space.full)
    uniform = {n: space.width_at(n, ratio) for n in space.groups}
    target = space.stats(uniform)["macs"] / max(1, space.stats(space.full)["macs"])
    calib = make_feeds(model, space.analysis.input_shapes, count=feeds, seed=seed, data=data, part=0)
    sens = measure_sensitivity(space, Fidelity(model, calib))
    found = search(space, "macs", min(target, 1 - 1e-9), sensitivity=sens) if target < 1 else \
        SearchResult(uniform, [], True, "", 1.0)
    plan = space.plan(found.keep)
    plan.meta.update({"ratio": ratio, "allocate": "sensitivity", "uniform_macs_fraction": round(target, 6),
                      "macs_fraction": round(space.stats(found.keep)["macs"] / max(1, space.stats(space.full)["macs"]), 6)})
    return plan


def auto_prune(model_or_path, search_config: AutoConfig, config: PruneConfig | None = None, *, data=None,
               evaluate=None, on_sensitivity=None, on_latency=None, progress=None, executor=None,
               timer=None) -> AutoResult:
    """The whole `onnxprune auto` pipeline as one call: candidates are pruned as `config` says
    (criterion, compensation, round_to, exclusions, shapes; its ratio and plan are the search's).
    `evaluate` defaults to label-free fidelity on `n_eval` held-out feeds (from `data`, a
    DataConfig, or seeded random inputs); sensitivity always uses fidelity on `calib` calibration
    feeds; calibration statistics (data-aware criteria, compensation) come from `data`. `executor`
    (core.executor, e.g. distributed.RayExecutor) runs sensitivity and candidate evaluations in
    parallel with the same results; `timer` (time_rounds' signature, e.g. distributed.DeviceTimer)
    runs every latency measurement elsewhere, such as on the target device."""
    from .fidelity import Fidelity, make_feeds, split_part
    from ..core.io import load_model
    from .latency_model import LatencyModel, MacsLatency, check_provider
    from .sensitivity import measure_sensitivity

    s = search_config
    config = config or PruneConfig(ratio=0.0)
    model = model_or_path if isinstance(model_or_path, onnx.ModelProto) else load_model(model_or_path)
    if s.latency == "measured" and timer is None:
        check_provider(s.provider)
    pool = split_part(model, data, 0) if data is not None else None  # read once: statistics and sensitivity
    if config.needs_data:
        if data is None:
            raise UsageError(f"--criterion {config.criterion} / --compensate {config.compensate} need calibration "
                             f"data (--data)")
        config = replace(config, calibration=make_feeds(model, {}, count=s.calib_examples, seed=config.seed, pool=pool))
    if s.depth or s.low_rank:  # one search over widths, blocks and ranks
        from .joint import auto_joint

        return auto_joint(model, s, config, results=(SearchResult, AutoResult), data=data, pool=pool,
                          evaluate=evaluate, timer=timer, on_sensitivity=on_sensitivity, on_latency=on_latency,
                          progress=progress)
    space = WidthSpace(model, config)
    if not space.groups:
        raise UsageError("the model has no prunable group (see onnxprune inspect)")
    ins, seed = space.analysis.input_shapes, config.seed
    calib, carry = state_feeds(space, make_feeds(model, ins, count=s.calib, seed=seed, pool=pool))
    sens = measure_sensitivity(space, Fidelity(model, calib, carry=carry), executor=executor)
    if on_sensitivity:
        on_sensitivity(sens)
    if evaluate is None:
        feeds, carry = state_feeds(space, make_feeds(model, ins, count=s.n_eval, seed=seed, data=data, part=1))
        evaluate = Fidelity(model, feeds, carry=carry)
    latency = s.latency
    if latency == "macs":
        latency = MacsLatency(space)
    elif latency == "measured":
        latency = LatencyModel(space, provider=s.provider, threads=s.threads, runs=s.runs, seed=seed, timer=timer)
        if s.goal == "speedup":
            latency.build(cache=s.cache)
            if on_latency:
                on_latency(latency)
    timing = latency if s.goal == "speedup" else None
    found = search(space, s.goal, s.target, sensitivity=sens, evaluate=evaluate, latency=timing,
                   max_drop=s.max_drop, min_snr=s.min_snr, max_evals=s.max_evals, time_limit=s.time_limit,
                   progress=progress, metric=s.metric, executor=executor)
    done = finish(model, space, found, goal=s.goal, target=s.target, sensitivity=sens, evaluate=evaluate,
                  latency=timing, verify=config.verify)
    done.measured_speedup = found.achieved if s.goal == "speedup" else latency.measure_speedup(candidate(done.result))
    return done


def budget_noise(value_points: float, examples: int) -> float:
    """Standard error, in points, of a rate-like metric (accuracy, WER, detection) at `value_points`
    measured on `examples` held-out examples (binomial, the rate kept away from 0 and 100 by one
    example). A budget smaller than this is judged mostly on noise, and a search that tries many
    steps keeps the lucky ones: on the zoo models (benchmarks/zoo_results.py --holdout 0.2), a
    1-point budget on 41 KWS clips (standard error 3.8 points) ended 6.4 points down on unseen
    voices, on 12 utterances 7 points up in WER; with 82 clips / 24 utterances, within 0.5 points
    but for one KWS run at 2.4 (README)."""
    n = max(1, examples)
    q = min(max(abs(value_points) / 100.0, 1.0 / n), 1.0 - 1.0 / n) if n > 1 else 0.5
    return 100.0 * math.sqrt(q * (1.0 - q) / n)
