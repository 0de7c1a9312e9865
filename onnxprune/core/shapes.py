"""Concrete shapes for every value: `--shape` fills symbolic input dims, then onnx shape
inference runs, and onnxruntime fills in whatever inference could not (contrib ops)."""

from __future__ import annotations

import copy

import numpy as np
import onnx

from ..errors import ModelError, UsageError, first_line
from .branches import BRANCHES, all_ifs, clear_branch_value_info, explore, has_if, if_key
from .external import is_huge, without_big_weights
from .graph import GraphIndex


def parse_shape_specs(specs) -> dict[str, list[int]]:
    """Parse `NAME:D1,D2,...` strings (the input name may itself contain ':')."""
    out: dict[str, list[int]] = {}
    for spec in specs or ():
        name, sep, dims = str(spec).rpartition(":")
        if not sep or not name:
            raise UsageError(f"--shape '{spec}': expected NAME:D1,D2,... (e.g. input:1,16000)")
        try:
            values = [int(d) for d in dims.split(",") if d.strip()]
        except ValueError:
            raise UsageError(f"--shape '{spec}': dimensions must be integers") from None
        if not values or any(v <= 0 for v in values):
            raise UsageError(f"--shape '{spec}': dimensions must be positive integers")
        out[name] = values
    return out


def parse_input_values(specs) -> dict[str, list[float]]:
    """Parse `NAME=V1[,V2,...]` strings: values fed to that input instead of random ones."""
    out: dict[str, list[float]] = {}
    for spec in specs or ():
        name, sep, text = str(spec).rpartition("=")
        if not sep or not name:
            raise UsageError(f"--input '{spec}': expected NAME=VALUE[,VALUE...] (e.g. sr=16000)")
        try:
            out[name] = [float(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise UsageError(f"--input '{spec}': values must be numbers") from None
        if not out[name]:
            raise UsageError(f"--input '{spec}': no value given")
    return out


def input_shapes(index: GraphIndex, overrides: dict[str, list[int]]) -> dict[str, list[int]]:
    """Concrete shape of each fed graph input, or a one-line error naming the symbolic dims."""
    known = {v.name for v in index.real_inputs()}
    for name in overrides:
        if name not in known:
            raise UsageError(f"--shape names '{name}', which is not a model input (inputs: {', '.join(sorted(known))})")
    shapes: dict[str, list[int]] = {}
    missing, described, examples = [], [], []
    for vi in index.real_inputs():
        tt = vi.type.tensor_type
        if not vi.type.HasField("tensor_type") or not tt.HasField("shape"):
            if vi.name in overrides:
                shapes[vi.name] = overrides[vi.name]
                continue
            missing.append(vi.name)
            described.append(f"{vi.name} [no shape]")
            continue
        # Some exporters (paddle2onnx) write dim_value -1 for "unknown": treat it as symbolic.
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value >= 0 else None for d in tt.shape.dim]
        if vi.name in overrides:
            given = overrides[vi.name]
            if len(given) != len(dims):
                raise UsageError(f"--shape {vi.name}: model input has rank {len(dims)}, got {len(given)} dims")
            for want, have in zip(given, dims):
                if have is not None and have != want:
                    raise UsageError(f"--shape {vi.name}:{','.join(map(str, given))} conflicts with the model's fixed shape {dims}")
            shapes[vi.name] = given
        elif any(d is None for d in dims):
            missing.append(vi.name)
            examples.append(f"--shape {vi.name}:" + ",".join(str(v) if v is not None else "1" for v in dims))
        else:
            shapes[vi.name] = dims
        if vi.name not in missing or tt.HasField("shape"):
            text = [str(v) if v is not None else f"{d.dim_param}?" if d.dim_param else "?" for d, v in zip(tt.shape.dim, dims)]
            described.append(f"{vi.name} [{', '.join(text)}]" + (" (given)" if vi.name in overrides else ""))
    if missing:
        raise UsageError(f"symbolic input dims need values: {', '.join(missing)}; inputs (? = unknown): "
                         f"{'; '.join(described)}; give --shape NAME:D1,D2,... for each, e.g. {' '.join(examples) or '--shape ' + missing[0] + ':...'}"
                         f", or --data (dims are then read from its examples)")
    return shapes


def with_fixed_inputs(model: onnx.ModelProto, shapes: dict[str, list[int]]) -> onnx.ModelProto:
    fixed = copy.deepcopy(model)
    for vi in fixed.graph.input:
        if vi.name in shapes:
            dims = vi.type.tensor_type.shape
            del dims.dim[:]
            for d in shapes[vi.name]:
                dims.dim.add().dim_value = d
    return fixed


def infer_value_shapes(model: onnx.ModelProto, shapes: dict[str, list[int]],
                       values: dict | None = None) -> dict[str, tuple[int, ...]]:
    """Concrete shape of every value of the main graph (graph inputs, initializers, node outputs)
    and of every `If` branch that runs on the probe inputs."""
    return probe(model, shapes, values)[0]


def probe(model: onnx.ModelProto, shapes: dict[str, list[int]], values: dict | None = None):
    """(value shapes, Paths or None). With Ifs, shapes come from the model inlined along every
    execution path reachable on seeded inputs (branches.explore); branches that cannot run
    are listed in Paths.failed and their values stay unknown."""
    if not has_if(model):
        return _infer(model, shapes, values), None
    from .runtime import make_session, random_feeds

    declared = _declared(model)
    try:
        feeds = random_feeds(make_session(declared), shapes, 0, values)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"onnxruntime cannot load the model: {first_line(exc)}") from None
    paths = explore(declared, feeds)  # explore and trace copy before they inline
    if not paths.models:  # no path inlines and runs (e.g. sequence-typed branch outputs): no descent
        try:
            result = _infer(model, shapes, values)
        except ModelError as exc:
            raise ModelError(f"{exc}; give --input NAME=VALUE for inputs that select a branch, and --shape") from None
        reason = next(iter(paths.failed.values()), "no path ran")
        paths.failed = {(if_key(n), b): reason for n, _ in all_ifs(model.graph) for b in BRANCHES}
        return result, paths
    result: dict[str, tuple[int, ...]] = {}
    for inlined in paths.models:
        for name, shape in _infer(inlined, shapes, values).items():
            result.setdefault(name, shape)
    for t in model.graph.initializer:
        result[t.name] = tuple(t.dims)
    return result, paths


def _declared(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with no intermediate shapes: exporters leave branch shapes that contradict
    concrete inputs (silero-vad's TorchScript rank checks)."""
    bare = copy.deepcopy(model)
    del bare.graph.value_info[:]
    clear_branch_value_info(bare.graph)
    return bare


INFER_WEIGHT_BYTES = 1 << 12  # shape inference reads weights' shapes only: bigger ones go in as inputs


def _infer(model: onnx.ModelProto, shapes, values=None) -> dict[str, tuple[int, ...]]:
    # onnx's inference serialises the model it is given: without the weights' bytes it costs
    # milliseconds instead of seconds on a 100 MB model (small constants stay: data propagation
    # of shape values needs them)
    light = with_fixed_inputs(_declared(without_big_weights(model, INFER_WEIGHT_BYTES)), shapes)
    try:
        inferred = onnx.shape_inference.infer_shapes(light, data_prop=True)
    except Exception:
        inferred = light
    result: dict[str, tuple[int, ...]] = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        shape = _static_shape(vi)
        if shape is not None:
            result[vi.name] = shape
    for t in model.graph.initializer:
        result[t.name] = tuple(t.dims)
    missing = [o for n in model.graph.node for o in n.output if o and o not in result]
    if missing:
        fixed = with_fixed_inputs(_declared(without_big_weights(model) if is_huge(model) else model), shapes)
        result.update(_shapes_from_runtime(fixed, shapes, missing, values))
    return result


def _static_shape(vi: onnx.ValueInfoProto):
    if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
        return None
    dims = vi.type.tensor_type.shape.dim
    if any(not d.HasField("dim_value") or d.dim_value < 0 for d in dims):
        return None
    return tuple(d.dim_value for d in dims)


def _shapes_from_runtime(model: onnx.ModelProto, shapes, names, values=None) -> dict[str, tuple[int, ...]]:
    """Run the model once on seeded inputs with the unknown values exposed as outputs."""
    from .runtime import make_session, random_feeds

    probe = copy.deepcopy(model)
    existing = {o.name for o in probe.graph.output}
    for name in names:
        if name not in existing:
            probe.graph.output.append(onnx.ValueInfoProto(name=name))
    try:
        sess = make_session(probe)
        outs = sess.run(names, random_feeds(sess, shapes, 0, values))
    except Exception as exc:
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
        if opset is not None and opset < 7:
            raise ModelError(f"model uses ai.onnx opset {opset}, older than onnxruntime runs (7 and newer); "
                             "convert it with onnx.version_converter") from exc
        raise ModelError(f"cannot determine value shapes: onnx shape inference left {len(names)} values unknown "
                         f"and onnxruntime could not run the model ({first_line(exc, 160)})") from exc
    # Sequence and map values (lists, dicts) have no tensor shape: leave them out.
    return {n: tuple(v.shape) for n, v in zip(names, outs) if isinstance(v, np.ndarray)}
