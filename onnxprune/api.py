"""The Python API: `analyze` and `prune`, keyword-only, mirroring the CLI."""

from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import onnx

from . import weights
from .analysis import Analysis, analyze_model
from .errors import UsageError, VerificationError
from .io import fingerprint, load_model, save_model
from .plan import Plan, group_names, make_plan, removed_classes
from .rewrite import apply_removal, io_masks
from .scoring import criterion_used, score_group
from .calibrate import calibrate
from .compensate import METHODS, compensate
from .criteria_data import DATA_CRITERIA, apoz, score_group_data
from .shapes import infer_value_shapes, parse_input_values, parse_shape_specs
from .stats import count_macs, count_params, op_histogram
from .verify import VerifyResult, full_check, verify


@dataclass(frozen=True)
class PruneConfig:
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
    compensate: str = "none"  # none | bias | lstsq (see compensate.py)


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

    def save(self, path: str | os.PathLike) -> list:
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
            "seconds": round(self.seconds, 3),
        }


def _as_model(model_or_path) -> onnx.ModelProto:
    if isinstance(model_or_path, onnx.ModelProto):
        return model_or_path
    return load_model(model_or_path)


def _shapes(shapes) -> dict[str, list[int]]:
    if shapes is None:
        return {}
    if isinstance(shapes, dict):
        return {k: list(v) for k, v in shapes.items()}
    return parse_shape_specs(shapes)


def analyze(model_or_path, *, shapes=None, exclude=(), allow_io_change: bool = False, inputs=None) -> Analysis:
    """Dependency groups of a model, each prunable or blocked with the reason."""
    return analyze_model(_as_model(model_or_path), shapes=_shapes(shapes), exclude=tuple(exclude),
                         allow_io_change=allow_io_change, values=_values(inputs))


def _values(inputs) -> dict | None:
    if inputs is None or isinstance(inputs, dict):
        return inputs
    return parse_input_values(inputs)


def model_stats(model: onnx.ModelProto, value_shapes: dict) -> dict:
    return {"params": count_params(model), "macs": count_macs(model, value_shapes),
            "bytes": _byte_size(model), "ops": op_histogram(model)}


def _byte_size(model: onnx.ModelProto) -> int:
    """Serialised size, with the weights left on disk (weights.py) counted."""
    try:
        size = model.ByteSize()
    except Exception:  # over 2 GiB protobuf refuses to measure it: count the tensors
        size = sum(t.ByteSize() for t in model.graph.initializer)
    return size + weights.external_bytes(model)


def prune(model_or_path, *, config: PruneConfig | None = None, **options) -> PruneResult:
    """Prune a model. Options are PruneConfig's fields; raises VerificationError if the result
    does not match its reference (the caller decides whether to keep it anyway)."""
    config = config or PruneConfig(**{k: (tuple(v) if k == "exclude" else v) for k, v in options.items()})
    if not 0.0 <= config.ratio < 1.0:
        raise UsageError(f"ratio {config.ratio} is out of range: use 0 <= ratio < 1")
    start = time.perf_counter()
    model = _as_model(model_or_path)
    analysis = analyze_model(model, shapes=_shapes(config.shapes), exclude=config.exclude,
                             allow_io_change=config.allow_io_change, values=_values(config.inputs))
    fp = fingerprint(model)
    rng = np.random.default_rng(config.seed)
    calib = data_statistics(analysis, config)
    scores = {g.id: channel_scores(analysis, g, config, rng, calib) for g in analysis.groups if g.prunable}
    if config.plan is not None:
        if config.plan.fingerprint != fp:
            raise UsageError(f"plan was made for another model (fingerprint {config.plan.fingerprint}, this model {fp})")
        plan = config.plan
    else:
        plan = make_plan(analysis, scores, ratio=config.ratio, global_ranking=config.global_ranking,
                         round_to=config.round_to, fingerprint=fp)
        plan.meta["criterion"] = config.criterion
    removed = removed_classes(analysis, plan)
    data_info = _data_info(analysis, config, calib)
    compensation: list[dict] = []
    if removed and config.compensate != "none":  # new weights at original shapes, then analysed afresh
        compensated, compensation = compensate(analysis, removed, calib, config.compensate)
        analysis = analyze_model(compensated, shapes=_shapes(config.shapes), exclude=config.exclude,
                                 allow_io_change=config.allow_io_change, values=_values(config.inputs))
        removed = removed_classes(analysis, plan)
    if removed:
        pruned = apply_removal(analysis, removed, mode="prune")
        reference = apply_removal(analysis, removed, mode="reference")
    else:  # nothing to remove: the output is the input, unfolded and untouched
        pruned, reference = copy.deepcopy(model), model
    io = io_masks(analysis, removed)
    result_verify = None
    if config.verify:
        result_verify = verify(pruned, reference, analysis.input_shapes, atol=config.atol, rtol=config.rtol,
                               original_checker_error=full_check(model),
                               seeds=(config.seed, config.seed + 1), io=io, values=analysis.input_values,
                               paths=analysis.paths)
    before = model_stats(model, analysis.shapes)
    try:
        after_shapes = infer_value_shapes(pruned, analysis.input_shapes, analysis.input_values)
    except Exception:
        after_shapes = {}
    after = model_stats(pruned, after_shapes)
    names = group_names(analysis)
    groups, layers = [], []
    for g in analysis.groups:
        keep = plan.groups[names[g.id]]
        groups.append({"name": names[g.id], "unit": g.unit, "size": g.size, "kept": len(keep), "prunable": g.prunable,
                       "blocked_by": g.blocked_by or None, "members": g.members(),
                       "criterion": criterion_used(analysis, g, config.criterion) if g.prunable else None})
        groups[-1].update(data_info.get(names[g.id], {}))
    for s in analysis.sources:
        kept = int(sum(1 for a in s.atoms.tolist() if analysis.atoms.find(a) not in removed))
        layers.append({"node": s.node.name or s.output, "op": s.node.op_type, "channels_before": len(s.atoms),
                       "channels_after": kept})
    resized = [{"name": name, "kind": kind, "axis": axis, "old": len(keep), "new": int(keep.sum())}
               for name, (axis, keep, kind) in io.items()]
    result = PruneResult(pruned, reference, plan, analysis, result_verify, before, after, groups, layers,
                         time.perf_counter() - start, config, resized, compensation,
                         calib.examples if calib else 0)
    return result


def data_statistics(analysis: Analysis, config: PruneConfig):
    """Calibration statistics, when the criterion or the compensation needs data."""
    data_needed = config.criterion in DATA_CRITERIA or config.compensate != "none"
    if config.compensate not in METHODS:
        raise UsageError(f"unknown compensation '{config.compensate}' (choose from {', '.join(METHODS)})")
    if not data_needed:
        return None
    if config.calibration is None:
        what = f"criterion '{config.criterion}'" if config.criterion in DATA_CRITERIA else \
            f"compensation '{config.compensate}'"
        raise UsageError(f"{what} needs calibration data (--data)")
    return calibrate(analysis, config.calibration,
                     moments=config.criterion == "reconstruction" or config.compensate == "lstsq")


def channel_scores(analysis, group, config: PruneConfig, rng, calib) -> np.ndarray:
    if config.criterion in DATA_CRITERIA:
        scores = score_group_data(analysis, group, config.criterion, calib, refit=config.compensate == "lstsq")
        if scores is not None:
            return scores
        return score_group(analysis, group, "l1", rng)  # no calibrated consumer reads it
    return score_group(analysis, group, config.criterion, rng)


def _data_info(analysis: Analysis, config: PruneConfig, calib) -> dict[str, dict]:
    """Per prunable group (by name): the data-aware criterion actually used, mean APoZ and the
    number of dead channels (<= 0 on every calibration value)."""
    if calib is None:
        return {}
    names = group_names(analysis)
    out = {}
    for g in analysis.groups:
        if not g.prunable:
            continue
        rate = apoz(analysis, g, calib)
        info = {"apoz_mean": None if rate is None else round(float(rate.mean()), 4),
                "dead_channels": None if rate is None else int((rate >= 1.0).sum())}
        if config.criterion in DATA_CRITERIA:
            info["criterion"] = config.criterion if rate is not None else "l1"
        out[names[g.id]] = info
    return out


def check_verified(result: PruneResult) -> None:
    if result.verify is not None and not result.verify.passed:
        raise VerificationError(f"verification failed: {result.verify.message}")
