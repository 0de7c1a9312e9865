"""One search space for `auto --depth` / `--low-rank`: width steps, block removals and ranks.

A candidate is (blocks dropped, kept widths, rank level per layer) and is built the way `prune`
applies a plan: blocks first (prune/depth.py, with the mean repair when asked), widths on what
remains (a WidthSpace per block set), then each chosen layer factorized (prune/lowrank.py) at the
rank removing its level's share of MACs *in the width-pruned layer*. One greedy over all three
kinds: each round, every move's goal gain (latency-model entry, or exact MACs/params) per unit of
added distortion (measured nmse: width sensitivity, each block dropped alone, each layer
factorized alone at each level) is ranked; the best is built and evaluated; over budget, that
group / block / layer is frozen. Low-rank moves exist only where factorizing the layer alone
measured faster than the original (interleaved, on the EP), unless the latency model is the MACs
proxy. The final plan (blocks, widths, ranks, repair) goes through `prune`, which verifies each
stage, and replays to the same bytes with the same calibration feeds.
"""

from __future__ import annotations

import time
from dataclasses import replace

import onnx

from ..core import external
from ..core.cost import count_macs, count_params
from ..core.io import fingerprint
from ..core.shapes import infer_value_shapes
from ..prune.depth import branch_means, drop_blocks, model_blocks, seeded_feeds
from ..prune.lowrank import find_layers, lowrank_step, rank_for
from ..prune.pipeline import prune
from .latency_model import paired_speedup, time_rounds
from .sensitivity import group_rows
from .widths import WidthSpace

LEVELS = (0.25, 0.5, 0.75)  # share of a layer's MACs a rank step removes
MEASURE_EVERY = 5
FASTER = 1.03  # a factorized layer counts as faster from a 3 % paired speedup: below, one timing here is noise


class JointSpace:
    """(blocks, widths, levels) -> model, memoising the depth-pruned model and its WidthSpace per block set."""

    def __init__(self, model: onnx.ModelProto, config, *, repair: str = "none", calibration=None,
                 method: str = "whiten", shapes=None):
        self.model, self.config, self.repair, self.method = model, config, repair, method
        self.calibration = calibration  # whitening and repair statistics (None: plain SVD, seeded repair)
        self.shapes = shapes or {}
        self.blocks = {b.name: b for b in model_blocks(model, self.shapes) if b.removable}
        self._spaces: dict[tuple, WidthSpace] = {}
        self._means = None

    def means(self):
        if self.repair != "mean" or not self.blocks:
            return None
        if self._means is None:
            feeds = self.calibration if self.calibration is not None else \
                seeded_feeds(self.model, self.shapes, None, self.config.seed)
            self._means = branch_means(self.model, list(self.blocks.values()), feeds)
        return self._means

    def depth_model(self, blocks: tuple) -> onnx.ModelProto:
        if not blocks:
            return self.model
        means = self.means()
        return drop_blocks(self.model, [self.blocks[n] for n in blocks],
                           means={n: means[n] for n in blocks} if means else None)

    def space(self, blocks: tuple) -> WidthSpace:
        key = tuple(sorted(blocks))
        if key not in self._spaces:
            self._spaces[key] = WidthSpace(self.depth_model(key), self.config)
        return self._spaces[key]

    def layer_names(self, blocks: tuple) -> set[str]:
        """Factorizable layers left once these blocks are gone (a dropped block takes its layers)."""
        return {l.name for l in find_layers(self.space(blocks).model)}

    def ranks(self, model: onnx.ModelProto, levels: dict) -> dict[str, int]:
        layers = {l.name: l for l in find_layers(model)}
        out = {}
        for name, level in levels.items():
            r = rank_for(layers[name], level, self.config.round_to) if name in layers else None
            if r:
                out[name] = r
        return out

    def build(self, blocks: tuple, keep: dict, levels: dict) -> onnx.ModelProto:
        model = self.space(blocks).build(keep)
        ranks = self.ranks(model, levels)
        if ranks:
            model, _ = lowrank_step(model, ranks, method=self.method if self.calibration is not None else "svd",
                                    calibration=self.calibration, check=False)
        return model

    def plan(self, blocks: tuple, keep: dict, levels: dict):
        space = self.space(blocks)
        plan = space.plan(keep)
        if blocks:
            plan.blocks, plan.fingerprint = list(blocks), fingerprint(self.model)
            if self.repair != "none":
                plan.meta["block_repair"] = self.repair
        ranks = self.ranks(space.build(keep), levels)
        if ranks:
            plan.ranks = ranks
            plan.meta["lowrank_method"] = self.method if self.calibration is not None else "svd"
        return plan


def carry_widths(old: WidthSpace, new: WidthSpace, keep: dict) -> dict:
    """Widths of `keep` (on `old`) for the groups of `new` with the same name and size; others whole."""
    return {n: keep[n] if n in keep and old.sizes.get(n) == size else size for n, size in new.sizes.items()}


def rank_entries(js: JointSpace, evaluate, *, timing: dict | None) -> dict[str, dict[float, dict]]:
    """Per eligible layer and level: the model with that layer alone factorized, its nmse (search
    sensitivity) and MACs saved, and with `timing` (time_rounds options and feeds) its paired
    speedup over the original, timed interleaved: the latency model's entry per factorized layer."""
    layers = find_layers(js.model)
    fed = js.space(()).analysis.input_shapes
    base = count_macs(js.model, infer_value_shapes(js.model, fed))
    out, models = {}, {}
    for layer in layers:
        for level in LEVELS:
            ranks = js.ranks(js.model, {layer.name: level})
            if not ranks:
                continue
            with external.scratch():
                model = js.build((), {}, {layer.name: level})
                m = evaluate(model)
                saved = base - count_macs(model, infer_value_shapes(model, fed))
            out.setdefault(layer.name, {})[level] = {"rank": ranks[layer.name], "nmse": m["nmse"],
                                                     "macs_saved": saved / max(1, base)}
            models[f"{layer.name}@{level}"] = model
    if timing and models:
        rounds = timing["time"]({"original": js.model} | models)
        for key in models:
            name, level = key.rsplit("@", 1)
            s = paired_speedup(rounds["original"], rounds[key])
            out[name][float(level)]["speedup"] = round(s, 5)
    return out


def block_entries(js: JointSpace, evaluate, *, timing: dict | None) -> dict[str, dict]:
    """Per removable block: nmse and MACs saved of the model without it alone (repaired as asked),
    and with `timing` its paired speedup over the original (the per-block latency entry)."""
    fed = js.space(()).analysis.input_shapes
    base = count_macs(js.model, infer_value_shapes(js.model, fed))
    out, models = {}, {}
    for name, block in js.blocks.items():
        model = js.depth_model((name,))
        m = evaluate(model)
        out[name] = {"kind": block.kind, "nmse": m["nmse"],
                     "macs_saved": (base - count_macs(model, infer_value_shapes(model, fed))) / max(1, base)}
        models[name] = model
    if timing and models:
        rounds = timing["time"]({"original": js.model} | models)
        for name in models:
            out[name]["speedup"] = round(paired_speedup(rounds["original"], rounds[name]), 5)
    return out


class JointSearch:
    """The greedy over widths, blocks and ranks (see the module docstring)."""

    def __init__(self, js: JointSpace, *, goal: str, target: float, sens, calib_eval, evaluate, metric: str,
                 max_drop=None, min_snr=None, latency=None, timing: dict | None = None, use_blocks: bool = True,
                 use_ranks: bool = True, max_evals: int = 200, time_limit=None, progress=None, baseline=None):
        self.js, self.goal, self.target, self.sens0, self.calib_eval = js, goal, target, sens, calib_eval
        self.evaluate, self.metric, self.max_drop, self.min_snr = evaluate, metric, max_drop, min_snr
        self.latency, self.timing, self.progress = latency, timing, progress
        self.max_evals, self.time_limit = max_evals, time_limit
        self.sens: dict[tuple, dict] = {}  # (block set, group) -> measured rows (groups new after a block went)
        self.block_table = block_entries(js, calib_eval, timing=timing) if use_blocks else {}
        ranks = rank_entries(js, calib_eval, timing=timing) if use_ranks else {}
        measured = timing is not None
        # low rank only where it measured faster (the MACs proxy treats every MAC saved as time)
        self.rank_table = {n: {lv: e for lv, e in t.items() if not measured or e.get("speedup", 0) >= FASTER}
                           for n, t in ranks.items()}
        self.rank_table = {n: t for n, t in self.rank_table.items() if t}
        self.all_ranks = ranks
        base_space = js.space(())
        self.base_stats = base_space.stats(base_space.full)
        self.budget = max_drop is not None or min_snr is not None
        self.baseline = baseline if baseline is not None or not self.budget else evaluate(js.model)[metric]

    # -- distortion and gain of each move ------------------------------------------------------
    def _width_sens(self, blocks: tuple, space: WidthSpace, name: str, kept: int) -> float:
        if not blocks and name in self.sens0.sizes:
            return self.sens0.at(name, kept)
        if name in self.sens0.sizes and self.sens0.sizes[name] == space.sizes[name]:
            return self.sens0.at(name, kept)
        key = (blocks, name)
        if key not in self.sens:  # a group the dropped blocks changed: measured now, on this space
            from .sensitivity import Sensitivity

            s = Sensitivity({name: space.sizes[name]})
            s.table[name] = group_rows((space, self.calib_eval, (0.25, 0.5, 0.75)), name)[0]
            self.sens[key] = s
        return self.sens[key].at(name, kept)

    def _width_gain(self, space: WidthSpace, keep: dict, name: str, width: int) -> float:
        """Share of the original's goal quantity saved by this width step."""
        lat = self.latency
        if self.goal == "speedup" and hasattr(lat, "saved") and name in lat.table and \
                lat.space.sizes.get(name) == space.sizes[name]:
            return (lat.saved(name, width) - lat.saved(name, keep[name])) / lat.base_ms
        key = "params" if self.goal == "params" else "macs"
        return (space.stats(keep)[key] - space.stats(dict(keep, **{name: width}))[key]) / max(1, self.base_stats[key])

    def _entry_gain(self, e: dict) -> float:
        if self.goal == "speedup" and "speedup" in e:
            return 1.0 - 1.0 / e["speedup"]
        return e["macs_saved"]

    def moves(self, blocks: tuple, keep: dict, levels: dict, frozen: set) -> list[tuple]:
        """Every allowed move as (key, kind, name, value), best gain per unit of distortion first."""
        space = self.js.space(blocks)
        found = []
        for name in space.groups:
            if ("width", name) in frozen:
                continue
            lower = [w for w in space.levels(name) if w < keep[name]]
            d0 = self._width_sens(blocks, space, name, keep[name])
            for width in lower[:1] if self.goal != "speedup" else lower[:4]:
                gain = self._width_gain(space, keep, name, width)
                if gain > 0:
                    cost = max(self._width_sens(blocks, space, name, width) - d0, 1e-12)
                    found.append(((gain / cost, gain), "width", name, width))
        taken = {id(n) for b in blocks for n in self.js.blocks[b].body + [self.js.blocks[b].add]}
        for name, e in self.block_table.items():
            block = self.js.blocks[name]
            if name in blocks or ("block", name) in frozen or \
                    any(id(n) in taken for n in block.body + [block.add]):
                continue
            gain = self._entry_gain(e)
            if gain > 0 and self.goal != "params":
                found.append(((gain / max(e["nmse"], 1e-12), gain), "block", name, True))
            elif self.goal == "params":
                share = block.params / max(1, self.base_stats["params"])
                found.append(((share / max(e["nmse"], 1e-12), share), "block", name, True))
        if self.goal != "params":
            present = self.js.layer_names(blocks)
            for name, table in self.rank_table.items():
                if ("rank", name) in frozen or name not in present:
                    continue
                now = levels.get(name, 0.0)
                d0 = self.all_ranks[name][now]["nmse"] if now else 0.0
                g0 = self._entry_gain(self.all_ranks[name][now]) if now else 0.0
                for level in (lv for lv in LEVELS if lv > now and lv in table):
                    gain = self._entry_gain(table[level]) - g0
                    if gain > 0:
                        cost = max(table[level]["nmse"] - d0, 1e-12)
                        found.append(((gain / cost, gain), "rank", name, level))
                    break  # one level at a time
        found.sort(key=lambda t: (t[0], t[1], t[2]), reverse=True)
        return found

    # -- the greedy -------------------------------------------------------------------------
    def run(self, SearchResult):
        """The greedy; `SearchResult` is auto's result class (passed in: search/auto.py imports this module)."""
        js, start = self.js, time.perf_counter()
        blocks, levels, frozen = (), {}, set()
        keep = js.space(()).full
        res = SearchResult(dict(keep), [], False, "", None, evals=1 if self.budget else 0, baseline=self.baseline,
                           metric=self.metric, max_drop=self.max_drop, min_snr=self.min_snr)
        self.state = (blocks, keep, levels)
        since, correction, predicted_gain = 0, 1.0, 0.0
        current = js.model
        while True:
            if res.evals >= self.max_evals:
                res.stop_reason = f"--max-evals {self.max_evals} reached"
                break
            if self.time_limit is not None and time.perf_counter() - start > self.time_limit:
                res.stop_reason = f"--time-limit {self.time_limit:g}s reached"
                break
            moves = self.moves(blocks, keep, levels, frozen)
            if not moves:
                res.stop_reason = "no width, block or rank step left within the budget"
                break
            _, kind, name, value = moves[0]
            t_blocks, t_keep, t_levels = blocks, keep, levels
            if kind == "width":
                t_keep = dict(keep, **{name: value})
            elif kind == "block":
                t_blocks = tuple(sorted(blocks + (name,)))
                t_keep = carry_widths(js.space(blocks), js.space(t_blocks), keep)
                present = js.layer_names(t_blocks)
                t_levels = {n: lv for n, lv in levels.items() if n in present}
            else:
                t_levels = dict(levels, **{name: value})
            gain = moves[0][0][1]
            with external.scratch():
                model = js.build(t_blocks, t_keep, t_levels)
                stats = {"macs": count_macs(model, _shapes(model, js)), "params": count_params(model)}
                space = js.space(t_blocks)
                entry = {"step": len(res.trajectory) + 1, "kind": kind,
                         "group": name if kind == "width" else f"{kind} {name}",
                         "kept": value if kind == "width" else (self.rank_table[name][value]["rank"] if kind == "rank"
                                                               else 0),
                         "size": space.sizes[name] if kind == "width" else
                         (1 if kind == "block" else self.js_layer_max(name)),
                         "macs": stats["macs"] / max(1, self.base_stats["macs"]),
                         "params": stats["params"] / max(1, self.base_stats["params"])}
                if kind == "rank":
                    entry["level"] = value
                if self.budget:
                    m = self.evaluate(model)
                    res.evals += 1
                    drop = self.baseline - m[self.metric]
                    entry.update(metrics={k: round(v, 4) for k, v in m.items()}, drop=round(drop, 4))
                    entry["accepted"] = (self.max_drop is None or drop <= self.max_drop + 1e-9) and \
                        (self.min_snr is None or m["snr_db"] >= self.min_snr)
                else:
                    entry["accepted"] = True
                if entry["accepted"] and kind == "rank" and self.timing is not None:
                    # faster alone on the original is not faster here (after widths, with other ranks):
                    # the step must measure faster than the model it changes, or it is not taken
                    entry["speedup_vs_previous"] = round(self.measure(model, current), 4)
                    res.measurements += 1
                    entry["accepted"] = entry["speedup_vs_previous"] >= FASTER
                done = False
                if not entry["accepted"]:
                    frozen.add((kind, name))
                else:
                    current = model
                    blocks, keep, levels = t_blocks, t_keep, t_levels
                    self.state = (blocks, keep, levels)
                    if self.goal == "speedup":
                        predicted_gain += gain
                        since += 1
                        predicted = correction / max(1e-6, 1.0 - min(predicted_gain, 0.95))
                        entry["predicted_speedup"] = round(predicted, 4)
                        if predicted >= self.target or since >= MEASURE_EVERY or kind == "block":  # a big step: measure
                            measured = self.measure(model)
                            res.measurements += 1
                            if measured >= self.target:
                                measured = (measured + self.measure(model)) / 2
                                res.measurements += 1
                            correction *= measured / predicted
                            since = 0
                            entry["measured_speedup"] = round(measured, 4)
                            res.achieved, done = measured, measured >= self.target
                    else:
                        res.achieved = entry[self.goal]
                        done = entry[self.goal] <= self.target
            res.trajectory.append(entry)
            if self.progress:
                self.progress(entry)
            if entry["accepted"] and done:
                res.reached, res.stop_reason = True, "target reached"
                break
        res.keep = dict(keep)
        return res

    def js_layer_max(self, name: str) -> int:
        return next(l.max_rank() for l in find_layers(self.js.model) if l.name == name)

    def measure(self, model: onnx.ModelProto, base: onnx.ModelProto | None = None) -> float:
        """Paired speedup of `model` over `base` (default: the original)."""
        if self.timing is None:  # the MACs proxy: time proportional to MACs plus its fixed overhead
            lat = self.latency
            macs = count_macs(model, _shapes(model, self.js))
            return lat.base_ms / lat._ms(macs) if hasattr(lat, "_ms") else self.base_stats["macs"] / max(1, macs)
        rounds = self.timing["time"]({"original": self.js.model if base is None else base, "candidate": model})
        return paired_speedup(rounds["original"], rounds["candidate"])


def _shapes(model, js: JointSpace) -> dict:
    try:
        return infer_value_shapes(model, js.space(()).analysis.input_shapes)
    except Exception:
        return {}


def auto_joint(model: onnx.ModelProto, s, config, *, results, data=None, pool=None, evaluate=None, timer=None,
               on_sensitivity=None, on_latency=None, progress=None):
    """`auto_prune` when `s.depth` or `s.low_rank`: the joint greedy, then the plan through `prune`
    (verified). `s` is the AutoConfig, `config` the PruneConfig, `results` auto's (SearchResult,
    AutoResult) classes; as auto_prune otherwise."""
    from ..core.runtime import make_session, random_feeds
    from .fidelity import Fidelity, make_feeds
    from .latency_model import LatencyModel, MacsLatency
    from .sensitivity import measure_sensitivity

    seed = config.seed
    if config.calibration is None and data is not None and (s.low_rank or s.block_repair != "none"):
        config = replace(config, calibration=make_feeds(model, {}, count=s.calib_examples, seed=seed, pool=pool))
    js = JointSpace(model, config, repair=s.block_repair, calibration=config.calibration,
                    shapes={k: list(v) for k, v in (config.shapes or {}).items()})
    space0 = js.space(())
    ins = space0.analysis.input_shapes
    calib_eval = Fidelity(model, make_feeds(model, ins, count=s.calib, seed=seed, pool=pool))
    sens = measure_sensitivity(space0, calib_eval)
    if on_sensitivity:
        on_sensitivity(sens)
    if evaluate is None:
        evaluate = Fidelity(model, make_feeds(model, ins, count=s.n_eval, seed=seed, data=data, part=1))
    timing = None
    if s.latency == "macs":
        latency = MacsLatency(space0)
    elif s.latency == "measured":
        latency = LatencyModel(space0, provider=s.provider, threads=s.threads, runs=s.runs, seed=seed, timer=timer)
        if s.goal == "speedup":
            latency.build(cache=s.cache)
            if on_latency:
                on_latency(latency)
        feeds = random_feeds(make_session(model), ins, seed)
        clock = timer or time_rounds
        timing = {"time": lambda models: clock(models, feeds, provider=s.provider, threads=s.threads, runs=s.runs)}
    else:  # an object with LatencyModel's interface
        latency = s.latency
    budget = s.max_drop is not None or s.min_snr is not None
    baseline = evaluate(model)[s.metric] if budget else None
    search = JointSearch(js, goal=s.goal, target=s.target, sens=sens, calib_eval=calib_eval, evaluate=evaluate,
                         metric=s.metric, max_drop=s.max_drop, min_snr=s.min_snr, latency=latency, timing=timing,
                         use_blocks=s.depth, use_ranks=s.low_rank, max_evals=s.max_evals, time_limit=s.time_limit,
                         progress=progress, baseline=baseline)
    SearchResult, AutoResult = results
    found = search.run(SearchResult)
    blocks, keep, levels = search.state
    plan = js.plan(blocks, keep, levels)
    plan.meta.update({"auto": {"goal": s.goal, "target": s.target, "reached": found.reached, "search": "joint"}})
    plan.meta.update({"compensate": config.compensate})
    result = prune(model, config=replace(config, ratio=0.0, plan=plan, verify=config.verify))
    metrics = evaluate(result.model) if evaluate is not None else {}
    done = AutoResult(result, found, s.goal, s.target, metrics, sens.to_dict(),
                      latency.to_dict() if s.goal == "speedup" else None)
    done.depth = {"search": "joint (widths" + (", blocks" if s.depth else "") + (", ranks" if s.low_rank else "") + ")",
                  "blocks": list(blocks), "ranks": dict(plan.ranks), "levels": levels, "block_repair": s.block_repair,
                  "block_entries": search.block_table, "rank_entries": {n: {str(k): v for k, v in t.items()}
                                                                        for n, t in search.all_ranks.items()},
                  "faster_layers": sorted(search.rank_table)}
    done.measured_speedup = search.measure(result.model)
    r = result
    found.achieved = done.measured_speedup if s.goal == "speedup" else r.after[s.goal] / max(1, r.before[s.goal])
    found.reached = found.achieved >= s.target if s.goal == "speedup" else found.achieved <= s.target + 1e-9
    return done
