"""Prove a rewrite right: the pruned model must compute what the reference computes (the original
with the consumer slices of removed channels zeroed, shapes untouched), pass the full onnx
checker, and load in onnxruntime."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import onnx

from ..core import external
from ..core.branches import inline_choices, trace
from ..errors import first_line
from ..core.runtime import make_session, random_feeds


@dataclass
class VerifyResult:
    passed: bool
    max_abs_diff: float
    tolerance: dict
    checker: str = "passed"
    message: str = ""
    outputs: dict = field(default_factory=dict)
    paths: int = 0  # extra If execution paths verified (forced branches, inlined)

    def to_dict(self) -> dict:
        return asdict(self)


def full_check(model: onnx.ModelProto) -> str | None:
    """None if the full checker (with strict shape inference) passes, else its first line."""
    try:
        if external.has_external(model):  # weights on disk: check a copy whose data files are placeholders
            with external.placeholder_copy(model) as path:
                onnx.checker.check_model(path, full_check=True)
        else:
            onnx.checker.check_model(model, full_check=True)
        return None
    except Exception as exc:
        return first_line(exc, 300)


def verify(pruned: onnx.ModelProto, reference: onnx.ModelProto, input_shapes: dict, *,
           original: onnx.ModelProto | None = None, seeds=(0, 1), atol: float = 1e-5,
           rtol: float = 1e-4, io: dict | None = None, values: dict | None = None, paths=None) -> VerifyResult:
    """`io`: graph inputs/outputs resized by --allow-io-change, name -> (axis, kept mask, kind).
    The pruned model gets the kept slice of each resized input; its resized outputs are compared
    with the kept slice of the reference's. `original`: the model before pruning; if the pruned
    model fails the full checker, a failure the original shares is reported, not blamed on us
    (checked only then: the full checker serialises the whole model)."""
    io = io or {}
    tol = {"atol": atol, "rtol": rtol, "rule": "|pruned-ref| <= atol + rtol*max|ref| per output"}
    error = full_check(pruned)
    checker = "passed"
    if error:
        if original is None or full_check(original) is None:
            return VerifyResult(False, float("nan"), tol, checker=f"failed: {error}",
                                message=f"pruned model fails onnx.checker full check: {error}")
        checker = f"failed, as the original does: {error}"
    try:  # the reference first: if ORT cannot run the original either, say so, not "pruned fails"
        sess_r = make_session(reference)
    except Exception as exc:
        return VerifyResult(False, float("nan"), tol, checker,
                            message=f"onnxruntime cannot load the reference (original) model: {first_line(exc)}")
    runs = _run_reference(sess_r, input_shapes, seeds, values)
    del sess_r  # one session at a time: with big weights, two would hold both models
    if isinstance(runs, str):
        return VerifyResult(False, float("nan"), tol, checker, message=runs)
    try:
        sess_p = make_session(pruned)
    except Exception as exc:
        return VerifyResult(False, float("nan"), tol, checker,
                            message=f"onnxruntime cannot load the pruned model: {first_line(exc)}")
    result = _compare(sess_p, runs, io, tol, checker)
    del sess_p
    if not result.passed or paths is None:
        return result
    # seeded inputs take one path through the Ifs: check every path that reaches another branch
    for force in paths.forces:
        if not force:
            continue
        where = " (If path " + ", ".join(f"{k}: {b.split('_')[0]}" for k, b in force.items()) + ")"
        for seed, feeds, _ in runs:
            try:
                ref_path, taken = trace(reference, feeds, force)
                path_runs = _run_reference(make_session(ref_path, quiet=True), input_shapes, (seed,), values, where)
                if isinstance(path_runs, str):
                    return VerifyResult(False, float("nan"), tol, checker, message=path_runs)
                sess_pb = make_session(inline_choices(pruned, taken), quiet=True)
            except Exception as exc:
                return VerifyResult(False, result.max_abs_diff, tol, checker,
                                    message=f"cannot verify{where}: {first_line(exc)}")
            path_result = _compare(sess_pb, path_runs, io, tol, checker, where)
            if not path_result.passed:
                return path_result
            result.max_abs_diff = max(result.max_abs_diff, path_result.max_abs_diff)
            for name, diff in path_result.outputs.items():
                result.outputs[name] = max(result.outputs.get(name, 0.0), diff)
        result.paths += 1
    return result


def _run_reference(sess_r, input_shapes, seeds, values, where: str = ""):
    """[(seed, feeds, {output: value})], or the message saying why the reference cannot run."""
    names = [o.name for o in sess_r.get_outputs()]
    runs = []
    for seed in seeds:
        feeds = random_feeds(sess_r, input_shapes, seed, values)
        try:
            runs.append((seed, feeds, dict(zip(names, sess_r.run(names, feeds)))))
        except Exception as exc:
            return (f"onnxruntime cannot run the reference (original) model{where} on seeded inputs: "
                    f"{first_line(exc)}")
    return runs


def _compare(sess_p, runs, io, tol, checker, where: str = "") -> VerifyResult:
    worst = 0.0
    per_output: dict[str, float] = {}
    for seed, feeds, outputs in runs:
        names, ref = list(outputs), list(outputs.values())
        feeds_p = {k: np.compress(io[k][1], v, axis=io[k][0]) if k in io else v for k, v in feeds.items()}
        try:
            got = sess_p.run(names, feeds_p)
        except Exception as exc:  # loads but fails at run time (e.g. a weight that no longer fits its input)
            return VerifyResult(False, float("nan"), tol, checker,
                                message=f"onnxruntime cannot run the pruned model{where}: {first_line(exc)}")
        for name, r, g in zip(names, ref, got):
            if not isinstance(r, np.ndarray) or not isinstance(g, np.ndarray):  # sequence/map outputs
                if not _same_value(r, g):
                    return VerifyResult(False, float("inf"), tol, checker,
                                        message=f"output '{name}' (a sequence or map) differs from the reference")
                continue
            if name in io:
                r = np.compress(io[name][1], r, axis=io[name][0])
            if r.shape != g.shape:
                return VerifyResult(False, float("inf"), tol, checker,
                                    message=f"output '{name}'{where} has shape {g.shape}, reference {r.shape}")
            if not np.issubdtype(r.dtype, np.floating):
                diff = 0.0 if np.array_equal(r, g) else float("inf")
                bound = 0.0
            else:
                r64, g64 = r.astype(np.float64), g.astype(np.float64)
                finite = np.isfinite(r64) & np.isfinite(g64)
                # NaN where NaN, the same infinity where infinite; elsewhere the difference counts
                special_same = np.array_equal(np.isnan(r64), np.isnan(g64)) and \
                    np.array_equal(r64[np.isinf(r64) | np.isinf(g64)], g64[np.isinf(r64) | np.isinf(g64)])
                with np.errstate(invalid="ignore"):  # inf - inf where both are the same infinity
                    diff = float(np.max(np.abs(r64 - g64)[finite], initial=0.0)) if special_same else float("inf")
                bound = tol["atol"] + tol["rtol"] * float(np.max(np.abs(r64[np.isfinite(r64)]), initial=0.0))
            per_output[name] = max(per_output.get(name, 0.0), diff)
            worst = max(worst, diff)
            if diff > bound:
                return VerifyResult(
                    False, worst, tol, checker,
                    message=f"output '{name}'{where} differs from the reference by {diff:.3g} (allowed {bound:.3g}, seed {seed})",
                    outputs=per_output)
    return VerifyResult(True, worst, tol, checker, outputs=per_output)


def _same_value(a, b) -> bool:
    """Exact equality of ORT's non-tensor outputs (lists of arrays, dicts)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_value(a[k], b[k]) for k in a)
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
