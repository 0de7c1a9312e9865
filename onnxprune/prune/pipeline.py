"""The one prune sequence: analyze -> calibrate -> score -> plan -> compensate -> analyze again ->
apply -> verify -> stats.

Each step is a small object in the spirit of onnx-ir's passes: `requires` (what must hold before it
runs), `call`, `ensures` (what it guarantees; verification is the `ensures` of `Apply`). `prune`
runs them all; the search's candidate builder (`search/widths.py`) runs the same steps without the
final verification, so a candidate is byte-for-byte the model `prune` would write for its plan.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
import onnx

from ..analysis import Analysis, analyze_model
from ..calibration.compensate import METHODS, compensate
from ..calibration.criteria import apoz
from ..calibration.statistics import Calibration, calibrate
from ..core.cost import count_macs, count_params, op_histogram
from ..core.external import external_bytes
from ..core.io import fingerprint, load_model, save_model
from ..core.shapes import infer_value_shapes, parse_input_values, parse_shape_specs
from ..errors import OnnxpruneError, UsageError, VerificationError
from . import criteria
from .depth import REPAIRS, depth_step
from .lowrank import METHODS as LOWRANK_METHODS, choose_ranks, lowrank_step
from .plan import Plan, group_names, make_plan, removed_classes
from .resized import resized_io
from .rewrite import apply_removal, io_masks
from .verify import VerifyResult, verify


@dataclass(frozen=True)
class PruneConfig:
    """Everything one prune needs; validated once, on construction."""
    ratio: float = 0.5
    criterion: str = "l1"
    global_ranking: bool = False
    round_to: int = 4
    exclude: tuple[str, ...] = ()
    shapes: dict | None = None
    verify: bool = True
    atol: float = 1e-5
    rtol: float = 1e-4
    seed: int = 0
    allow_io_change: bool = False
    plan: Plan | None = None
    inputs: dict | None = None  # NAME -> values fed instead of random ones (e.g. {"sr": [16000]})
    calibration: Sequence[dict] | None = None  # feed dicts for data-aware criteria and compensation
    compensate: str = "none"  # none | bias | lstsq (see calibration/compensate.py)
    drop_blocks: tuple[str, ...] = ()  # residual blocks removed before widths (prune/depth.py; inspect lists them)
    low_rank: float | None = None  # share of each eligible layer's MACs removed by factorization (prune/lowrank.py)
    ranks: dict | None = None  # layer -> rank, instead of low_rank
    low_rank_method: str = "whiten"  # whiten | asvd | svd (data-aware ones read `calibration`)
    block_repair: str = "none"  # none | mean: dropped blocks leave y = x + E[f(x)] (prune/depth.py)
    scores: dict | None = None  # group name -> channel scores of an external criterion (taylor/fisher: recover/)

    def __post_init__(self):
        if not 0.0 <= self.ratio < 1.0:
            raise UsageError(f"ratio {self.ratio} is out of range: use 0 <= ratio < 1")
        criteria.get(self.criterion)  # unknown -> UsageError naming the choices
        if self.compensate not in METHODS:
            raise UsageError(f"unknown compensation '{self.compensate}' (choose from {', '.join(METHODS)})")
        if not isinstance(self.exclude, tuple):
            object.__setattr__(self, "exclude", tuple(self.exclude))
        if isinstance(self.shapes, (list, tuple)):
            object.__setattr__(self, "shapes", parse_shape_specs(self.shapes))
        if self.inputs is not None and not isinstance(self.inputs, dict):
            object.__setattr__(self, "inputs", parse_input_values(self.inputs))
        if not isinstance(self.drop_blocks, tuple):
            object.__setattr__(self, "drop_blocks", tuple(self.drop_blocks))
        if self.low_rank is not None and not 0.0 < self.low_rank < 1.0:
            raise UsageError(f"low_rank {self.low_rank} is out of range: use 0 < RATIO < 1 "
                             f"(the share of each layer's MACs to remove)")
        if self.plan is not None and ((self.drop_blocks and list(self.drop_blocks) != self.plan.blocks)
                                      or self.low_rank is not None or self.ranks):
            raise UsageError("a plan replays its own blocks and ranks: drop --drop-blocks/--low-rank/--rank")
        if self.block_repair not in REPAIRS:
            raise UsageError(f"unknown block repair '{self.block_repair}' (choose from {', '.join(REPAIRS)})")
        if self.low_rank_method not in LOWRANK_METHODS:
            raise UsageError(f"unknown low-rank method '{self.low_rank_method}' (choose from {', '.join(LOWRANK_METHODS)})")

    @property
    def needs_data(self) -> bool:
        """The criterion or the compensation reads calibration statistics."""
        return criteria.needs_data(self.criterion, self.compensate)

    @property
    def needs_moments(self) -> bool:
        return self.criterion == "reconstruction" or self.compensate == "lstsq"

    def analyze_options(self) -> dict:
        return dict(shapes={k: list(v) for k, v in (self.shapes or {}).items()}, exclude=self.exclude, allow_io_change=self.allow_io_change,
                    values=self.inputs)


@dataclass
class PruneResult:
    model: onnx.ModelProto
    reference: onnx.ModelProto
    plan: Plan
    analysis: Analysis
    verify: VerifyResult | None
    before: dict
    after: dict
    groups: list[dict]
    layers: list[dict]
    seconds: float = 0.0
    config: PruneConfig = field(default_factory=PruneConfig)
    resized_io: list[dict] = field(default_factory=list)
    compensation: list[dict] = field(default_factory=list)  # one row per consumer that lost inputs
    calibration_examples: int = 0
    steps: list[dict] = field(default_factory=list)  # depth / lowrank stages, each with its own verification

    def save(self, path) -> list:
        """Write the pruned model (weights read from disk go to `<name>.data`); returns the files."""
        return save_model(self.model, path)

    def report(self) -> dict:
        return {
            "params_before": self.before["params"], "params_after": self.after["params"],
            "macs_before": self.before["macs"], "macs_after": self.after["macs"],
            "size_before": self.before["bytes"], "size_after": self.after["bytes"],
            "ops_before": self.before["ops"], "ops_after": self.after["ops"],
            "verify": self.verify.to_dict() if self.verify else None,
            "groups": self.groups, "layers": self.layers, "resized_io": self.resized_io,
            "notes": self.analysis.notes,
            "config": {"ratio": self.config.ratio, "criterion": self.config.criterion,
                       "global": self.config.global_ranking, "round_to": self.config.round_to,
                       "exclude": list(self.config.exclude), "seed": self.config.seed,
                       "inputs": self.analysis.input_values or None,
                       "compensate": self.config.compensate, "calibration_examples": self.calibration_examples},
            "compensation": self.compensation,
            **({"steps": self.steps} if self.steps else {}),
            "seconds": round(self.seconds, 3),
        }


class PipelineError(OnnxpruneError):
    """A step's precondition or postcondition does not hold (a bug, not bad input)."""


@dataclass
class State:
    """What the steps read and write, in order of appearance."""
    model: onnx.ModelProto
    config: PruneConfig
    analysis: Analysis | None = None
    fingerprint: str = ""
    calib: Calibration | None = None
    scores: dict[int, np.ndarray] | None = None
    plan: Plan | None = None
    removed: set | None = None
    compensation: list[dict] = field(default_factory=list)
    pruned: onnx.ModelProto | None = None
    reference: onnx.ModelProto | None = None
    verify: VerifyResult | None = None
    original: onnx.ModelProto | None = None  # the input model when DropBlocks replaced `model`
    steps: list[dict] = field(default_factory=list)  # reports of the depth / lowrank steps


class Step:
    name = "step"

    def requires(self, st: State) -> None:
        pass

    def call(self, st: State) -> None:
        raise NotImplementedError

    def ensures(self, st: State) -> None:
        pass

    def __call__(self, st: State) -> State:
        self.requires(st)
        self.call(st)
        self.ensures(st)
        return st

    def need(self, st: State, *names: str) -> None:
        missing = [n for n in names if getattr(st, n) is None]
        if missing:
            raise PipelineError(f"step '{self.name}' needs {', '.join(missing)} from an earlier step")


class Analyze(Step):
    name = "analyze"

    def call(self, st):
        st.analysis = analyze_model(st.model, **st.config.analyze_options())
        st.fingerprint = fingerprint(st.original if st.original is not None else st.model)


class DropBlocks(Step):
    """Depth, before the width analysis: the named residual blocks (config or plan) go; ensures the
    result equals the original with their last projections zeroed (prune/depth.py)."""
    name = "depth"

    def call(self, st):
        c = st.config
        names = c.plan.blocks if c.plan is not None else c.drop_blocks
        if names:
            st.original = st.model
            repair = c.plan.meta.get("block_repair", "none") if c.plan is not None else c.block_repair
            if repair != "none" and c.calibration is not None and not isinstance(c.calibration, (list, tuple)):
                st.config = c = replace(c, calibration=list(c.calibration))  # read here and again later
            st.model, info = depth_step(st.model, names, shapes=c.analyze_options()["shapes"], values=c.inputs,
                                        check=c.verify, atol=c.atol, rtol=c.rtol, seed=c.seed, repair=repair,
                                        calibration=c.calibration)
            st.steps.append(info)


class Factorize(Step):
    """Low rank, after widths: factorizes what remains; ensures the result equals the model holding
    A.B in the original layers (prune/lowrank.py). Records the ranks in the plan."""
    name = "lowrank"

    def requires(self, st):
        self.need(st, "pruned", "plan", "analysis")

    def call(self, st):
        c = st.config
        replay = c.plan is not None
        ranks = dict(c.plan.ranks) if replay else choose_ranks(st.pruned, ratio=c.low_rank, ranks=c.ranks,
                                                               round_to=c.round_to, exclude=c.exclude)
        if not ranks:
            return
        method = st.plan.meta.get("lowrank_method", c.low_rank_method) if replay else c.low_rank_method
        a = st.analysis
        st.pruned, info = lowrank_step(st.pruned, ranks, method=method, calibration=c.calibration,
                                       shapes=a.input_shapes, values=a.input_values, check=c.verify, atol=c.atol,
                                       rtol=c.rtol, seed=c.seed)
        st.steps.append(info)
        st.plan.ranks = ranks
        st.plan.meta["lowrank_method"] = info["method"]


class Calibrate(Step):
    """Calibration statistics, when the criterion or the compensation needs data."""
    name = "calibrate"

    def requires(self, st):
        self.need(st, "analysis")
        if st.config.needs_data and st.config.calibration is None:
            c = st.config
            what = f"criterion '{c.criterion}'" if criteria.get(c.criterion).needs_data else f"compensation '{c.compensate}'"
            raise UsageError(f"{what} needs calibration data (--data)")

    def call(self, st):
        if st.config.needs_data:
            st.calib = calibrate(st.analysis, st.config.calibration, moments=st.config.needs_moments)


class Score(Step):
    name = "score"

    def requires(self, st):
        self.need(st, "analysis")

    def call(self, st):
        rng = np.random.default_rng(st.config.seed)  # one generator in group order: 'random' replays
        criterion = criteria.get(st.config.criterion)
        if criterion.external and (st.config.scores is not None or st.config.plan is not None):
            st.scores = external_scores(st.analysis, st.config.scores or {}, st.config.plan is not None)
            return
        refit = st.config.compensate == "lstsq"
        st.scores = {g.id: criterion.score(st.analysis, g, rng=rng, calib=st.calib, refit=refit)[0]
                     for g in st.analysis.groups if g.prunable}


def external_scores(analysis, given: dict, replay: bool) -> dict[int, np.ndarray]:
    """Group id -> scores handed over by name (checked against the groups); a replayed plan needs none."""
    names = group_names(analysis)
    out = {}
    for g in analysis.groups:
        if not g.prunable:
            continue
        s = given.get(names[g.id])
        if s is None and replay:
            continue
        if s is None or np.asarray(s).shape != (g.size,):
            raise UsageError(f"the criterion's scores do not fit group '{names[g.id]}' ({g.size} channels): "
                             f"compute them on this model with the same --exclude/--shape")
        out[g.id] = np.asarray(s, dtype=np.float64)
    return out


class MakePlan(Step):
    name = "plan"

    def requires(self, st):
        self.need(st, "analysis", "scores")

    def call(self, st):
        c = st.config
        if c.plan is not None:
            if c.plan.fingerprint != st.fingerprint:
                raise UsageError(f"plan was made for another model (fingerprint {c.plan.fingerprint}, "
                                 f"this model {st.fingerprint})")
            st.plan = c.plan
        else:
            st.plan = make_plan(st.analysis, st.scores, ratio=c.ratio, global_ranking=c.global_ranking,
                                round_to=c.round_to, fingerprint=st.fingerprint)
            st.plan.meta["criterion"] = c.criterion
            st.plan.meta["compensate"] = c.compensate  # a replay without it would give another model


class Compensate(Step):
    """New weights at the original shapes, then the model is analysed afresh (same groups)."""
    name = "compensate"

    def requires(self, st):
        self.need(st, "analysis", "plan")

    def call(self, st):
        st.removed = removed_classes(st.analysis, st.plan)
        if st.removed and st.config.compensate != "none":
            repaired, st.compensation = compensate(st.analysis, st.removed, st.calib, st.config.compensate)
            st.analysis = analyze_model(repaired, **st.config.analyze_options())
            st.removed = removed_classes(st.analysis, st.plan)


class Apply(Step):
    """The pruned model and its reference (same weight changes, original shapes). Ensures: the
    pruned model equals the reference on seeded inputs (when the config asks for verification)."""
    name = "apply"

    def __init__(self, verify: bool = True, reference: bool = True):
        self.verify, self.with_reference = verify, reference

    def requires(self, st):
        self.need(st, "analysis", "removed")

    def call(self, st):
        if st.removed:
            st.pruned = apply_removal(st.analysis, st.removed, mode="prune")
            if self.with_reference:
                st.reference = apply_removal(st.analysis, st.removed, mode="reference")
        else:  # nothing to remove: the output is the input, unfolded and untouched
            st.pruned, st.reference = copy.deepcopy(st.model), st.model

    def ensures(self, st):
        c = st.config
        if self.verify and c.verify:
            a = st.analysis
            st.verify = verify(st.pruned, st.reference, a.input_shapes, atol=c.atol, rtol=c.rtol,
                               original=st.model, seeds=(c.seed, c.seed + 1),
                               io=io_masks(a, st.removed), values=a.input_values, paths=a.paths)


PREPARE = (Analyze(), Calibrate(), Score())  # once per model: the search reuses this state


def run(model: onnx.ModelProto, config: PruneConfig, steps: Sequence[Step]) -> State:
    st = State(model, config)
    for step in steps:
        step(st)
    return st


def prune(model_or_path, *, config: PruneConfig | None = None, **options) -> PruneResult:
    """Prune a model. Options are PruneConfig's fields; raises VerificationError if the result
    does not match its reference (the caller decides whether to keep it anyway)."""
    config = config or PruneConfig(**options)
    start = time.perf_counter()
    model = model_or_path if isinstance(model_or_path, onnx.ModelProto) else load_model(model_or_path)
    st = run(model, config, (DropBlocks(), *PREPARE, MakePlan(), Compensate(), Apply(), Factorize()))
    if st.original is not None:
        st.plan.blocks = list(config.plan.blocks if config.plan is not None else config.drop_blocks)
        repair = next(s["repair"] for s in st.steps if s["step"] == "depth")
        if repair != "none":  # written only when used: plans without it keep their bytes
            st.plan.meta["block_repair"] = repair
    return _result(st, time.perf_counter() - start)


def _result(st: State, seconds: float) -> PruneResult:
    analysis, plan, config = st.analysis, st.plan, st.config
    before = model_stats(st.model, analysis.shapes) if st.original is None else \
        model_stats(st.original, infer_value_shapes(st.original, analysis.input_shapes, analysis.input_values))
    try:
        after_shapes = infer_value_shapes(st.pruned, analysis.input_shapes, analysis.input_values)
    except Exception:
        after_shapes = {}
    after = model_stats(st.pruned, after_shapes)
    data_info = _data_info(analysis, config, st.calib)
    names = group_names(analysis)
    groups, layers = [], []
    for g in analysis.groups:
        keep = plan.groups[names[g.id]]
        used = criteria.get(config.criterion).used(analysis, g) if g.prunable else None
        groups.append({"name": names[g.id], "unit": g.unit, "size": g.size, "kept": len(keep), "prunable": g.prunable,
                       "blocked_by": g.blocked_by or None, "members": g.members(), "criterion": used})
        groups[-1].update(data_info.get(names[g.id], {}))
    for s in analysis.sources:
        kept = int(sum(1 for a in s.atoms.tolist() if analysis.atoms.find(a) not in st.removed))
        layers.append({"node": s.node.name or s.output, "op": s.node.op_type, "channels_before": len(s.atoms),
                       "channels_after": kept})
    resized = resized_io(analysis, st.removed)
    return PruneResult(st.pruned, st.reference, plan, analysis, st.verify, before, after, groups, layers,
                       seconds, config, resized, st.compensation, st.calib.examples if st.calib else 0, st.steps)


def model_stats(model: onnx.ModelProto, value_shapes: dict) -> dict:
    return {"params": count_params(model), "macs": count_macs(model, value_shapes),
            "bytes": _byte_size(model), "ops": op_histogram(model)}


def _byte_size(model: onnx.ModelProto) -> int:
    """Serialised size, with the weights left on disk (core/external.py) counted."""
    try:
        size = model.ByteSize()
    except Exception:  # over 2 GiB protobuf refuses to measure it: count the tensors
        size = sum(t.ByteSize() for t in model.graph.initializer)
    return size + external_bytes(model)


def _data_info(analysis: Analysis, config: PruneConfig, calib) -> dict[str, dict]:
    """Per prunable group (by name): the data-aware criterion actually used, mean APoZ and the
    number of dead channels (<= 0 on every calibration value)."""
    if calib is None:
        return {}
    names = group_names(analysis)
    data_criterion = criteria.get(config.criterion).needs_data
    out = {}
    for g in analysis.groups:
        if not g.prunable:
            continue
        rate = apoz(analysis, g, calib)
        info = {"apoz_mean": None if rate is None else round(float(rate.mean()), 4),
                "dead_channels": None if rate is None else int((rate >= 1.0).sum())}
        if data_criterion:  # an external criterion scored every group itself
            info["criterion"] = config.criterion if rate is not None or config.scores is not None else "l1"
        out[names[g.id]] = info
    return out


def check_verified(result: PruneResult) -> None:
    if result.verify is not None and not result.verify.passed:
        raise VerificationError(f"verification failed: {result.verify.message}")
    for step in result.steps:
        if step["verify"] is not None and not step["verify"]["passed"]:
            raise VerificationError(f"{step['step']} verification failed: {step['verify']['message']}")


def with_plan(config: PruneConfig, plan: Plan, **changes) -> PruneConfig:
    """The config that replays `plan` (ratio and ranking then come from the plan)."""
    return replace(config, ratio=0.0, plan=plan, **changes)
