"""After pruning, optionally rewrite the graph once more: OnnxSlim's simplifier (`slim`) or the graph
as onnxruntime optimizes it offline (`ort_offline`). Neither is trusted: the result is kept only if
its interface (input/output names, element types, shapes), IR version and default-domain opset are
the pruned model's and its outputs equal the pruned model's on seeded inputs (`verify`, same
tolerances); otherwise the pruned model is kept and the reason returned.

ORT level: BASIC. onnxruntime's documentation says models optimized offline at EXTENDED or ALL
may hold contrib ops or layouts specific to the execution provider and hardware they were
optimized on; BASIC rewrites (constant folding, redundant-node removal, Conv+BN/Add/Mul fusion)
are plain ONNX and run anywhere.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import onnx

from ..core.branches import all_ifs, explore, has_if, if_key
from ..core.io import model_bytes
from ..core.runtime import make_session, random_feeds
from ..errors import UsageError, first_line
from .verify import verify

PROVIDERS = {"cpu": "CPUExecutionProvider"}
INSTALL = "pip install 'onnxprune[slim]'"


@dataclass
class Finished:
    """One post-pass: `model` is what to write (the candidate if `kept`, else the pruned model)."""

    kind: str
    model: onnx.ModelProto
    kept: bool
    message: str
    nodes_before: int
    nodes_after: int
    max_abs_diff: float = float("nan")

    def to_dict(self) -> dict:
        return {"kind": self.kind, "kept": self.kept, "message": self.message, "nodes_before": self.nodes_before,
                "nodes_after": self.nodes_after, "max_abs_diff": self.max_abs_diff}


def interface(model: onnx.ModelProto) -> list[tuple]:
    """(kind, name, element type, dims) of every run-time input and every output."""
    inits = {t.name for t in model.graph.initializer}

    def dims(v):
        return tuple(d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim) \
            if v.type.tensor_type.HasField("shape") else None

    return [("input", v.name, v.type.tensor_type.elem_type, dims(v)) for v in model.graph.input if v.name not in inits] \
        + [("output", v.name, v.type.tensor_type.elem_type, dims(v)) for v in model.graph.output]


def _refined(new: list[tuple], old: list[tuple]) -> bool:
    """Same inputs exactly, same outputs except dims that were symbolic or unknown and are now numbers."""
    if len(new) != len(old) or any(a != b for a, b in zip(new, old) if a[0] == "input"):
        return False
    for a, b in zip(new, old):
        if a[:3] != b[:3] or (a[3] is None) != (b[3] is None) or (a[3] and len(a[3]) != len(b[3])):
            return False
        if a[3] and any(x != y and not (isinstance(y, str) or y == 0) for x, y in zip(a[3], b[3])):
            return False
    return new != old


def _if_keys(model: onnx.ModelProto) -> list[str]:
    return sorted(if_key(n) for n, _ in all_ifs(model.graph))


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def check(kind: str, candidate: onnx.ModelProto, pruned: onnx.ModelProto, shapes: dict, *, values=None,
          atol: float = 1e-5, rtol: float = 1e-4, seeds=(0, 1, 2)) -> Finished:
    """Keep `candidate` only if a caller cannot tell it from `pruned` (see the module docstring)."""
    n0, n1 = len(pruned.graph.node), len(candidate.graph.node)

    def refuse(why: str, diff: float = float("nan")) -> Finished:
        return Finished(kind, pruned, False, why, n0, n1, diff)

    candidate.ir_version = pruned.ir_version  # explicit: never the writer's default
    if _refined(interface(candidate), interface(pruned)):  # an output dim the simplifier proved constant
        del candidate.graph.output[:]
        candidate.graph.output.extend(pruned.graph.output)  # the pruned declaration: as true, less specific
    if interface(candidate) != interface(pruned):
        changed = [a for a, b in zip(interface(candidate), interface(pruned)) if a != b] or ["count"]
        return refuse(f"interface changed ({changed[0]})")
    if _opset(candidate) != _opset(pruned):
        return refuse(f"opset changed ({_opset(pruned)} -> {_opset(candidate)})")
    known = {o.domain for o in pruned.opset_import} | {"", "ai.onnx"}
    extra = sorted({n.domain for n in candidate.graph.node} - known)
    if extra:  # e.g. com.microsoft contrib ops: onnxruntime-only
        return refuse(f"uses operator domain(s) {', '.join(extra)} the pruned model does not")
    keep = [o for o in candidate.opset_import if o.domain in known]  # ORT lists every domain it knows
    del candidate.opset_import[:]
    candidate.opset_import.extend(keep)
    paths = None
    if has_if(pruned):  # every If branch seeded inputs reach is checked, as prune's verification does
        if _if_keys(candidate) != _if_keys(pruned):
            return refuse("If nodes renamed or removed: their branches cannot be checked one by one")
        paths = explore(pruned, random_feeds(make_session(pruned), shapes, seeds[0], values))
    v = verify(candidate, pruned, shapes, seeds=seeds, atol=atol, rtol=rtol, values=values, paths=paths)
    if not v.passed:
        return refuse(f"outputs differ from the pruned model: {v.message}", v.max_abs_diff)
    return Finished(kind, candidate, True, f"outputs equal the pruned model's (max diff {v.max_abs_diff:.3g}, "
                                           f"{len(seeds)} seeded inputs)", n0, n1, v.max_abs_diff)


def slim(pruned: onnx.ModelProto, shapes: dict, **kw) -> Finished:
    """OnnxSlim's default pass (constant folding, dead-node and common-subexpression removal,
    pattern fusions such as MatMul+Add -> Gemm), checked. Needs the `slim` extra."""
    try:
        import onnxslim
    except ImportError:
        raise UsageError(f"--slim needs OnnxSlim, which is not installed: {INSTALL}") from None
    copy = onnx.ModelProto.FromString(model_bytes(pruned))
    try:
        candidate = onnxslim.slim(copy)
    except Exception as exc:  # a simplifier crash is a refusal, not our failure
        return Finished("slim", pruned, False, f"OnnxSlim failed: {first_line(exc)}", len(pruned.graph.node), 0)
    if candidate is None:
        return Finished("slim", pruned, False, "OnnxSlim returned nothing", len(pruned.graph.node), 0)
    return check("slim", candidate, pruned, shapes, **kw)


def ort_offline(pruned: onnx.ModelProto, shapes: dict, ep: str = "cpu", **kw) -> Finished:
    """The graph onnxruntime builds for `ep` at the BASIC level, written with
    SessionOptions.optimized_model_filepath, checked."""
    import onnxruntime as ort

    if ep not in PROVIDERS:
        raise UsageError(f"--optimize-for {ep}: only {', '.join(PROVIDERS)} is supported")
    with tempfile.TemporaryDirectory(prefix="onnxprune-ort-") as tmp:
        out = Path(tmp) / "optimized.onnx"
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        opts.optimized_model_filepath = str(out)
        opts.log_severity_level = 3
        try:
            ort.InferenceSession(model_bytes(pruned), sess_options=opts, providers=[PROVIDERS[ep]])
            candidate = onnx.load(str(out))
        except Exception as exc:
            return Finished(f"ort-{ep}", pruned, False, f"onnxruntime could not write it: {first_line(exc)}",
                            len(pruned.graph.node), 0)
    return check(f"ort-{ep}", candidate, pruned, shapes, **kw)
