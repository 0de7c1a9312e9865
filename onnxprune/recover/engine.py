"""A differentiable copy of an ONNX model, built by onnx2torch, whose trainable values are the
model's own float initializers in ONNX layout.

Why masters in ONNX layout: onnx2torch copies some initializers into modules under a transform
(a Gemm's B becomes nn.Linear's weight, transposed unless transB, times alpha). We keep one
parameter per initializer, exactly as ONNX stores it, and feed every module slot the transform of
it through `torch.func.functional_call`; writing back is then a copy, never an inverse. Each slot's
binding is checked bit for bit against what onnx2torch built, and the whole model against
onnxruntime (`check`), before any gradient is used.
"""

from __future__ import annotations

import copy

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import ModelError
from ._deps import require

_FLOAT = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16}


class TorchModel:
    """`model(*inputs) -> list of outputs` in torch, trainable initializers in `params`."""

    def __init__(self, model: onnx.ModelProto, extra_outputs=(), train: set[str] | None = None):
        torch, o2t = require()
        self.torch = torch
        inits = {t.name: t for t in model.graph.initializer}
        self.input_names = [i.name for i in model.graph.input if i.name not in inits]
        self.output_names = [o.name for o in model.graph.output] + list(extra_outputs)
        work = training_copy(model, extra_outputs)
        try:
            self.gm = o2t.convert(work, attach_onnx_mapping=True)
        except (NotImplementedError, KeyError, ValueError, RuntimeError) as exc:
            raise ModelError(f"cannot build the gradient model: {str(exc).splitlines()[0] if str(exc) else exc!r}")
        self.gm.eval()  # BatchNorm uses its running statistics, as ONNX does
        for p in self.gm.parameters():
            p.requires_grad_(False)
        slots = _bind(self.gm, work, inits)
        wanted = {n for n, t in inits.items() if t.data_type in _FLOAT and _numel(t) >= 2}
        if train is not None:
            wanted &= set(train)
        self.params: dict = {}
        self.slots = []  # (module path, initializer name, transform)
        for path, name, fn in slots:
            if name not in wanted:
                continue
            if name not in self.params:
                value = torch.from_numpy(numpy_helper.to_array(inits[name]).astype(np.float32))
                self.params[name] = torch.nn.Parameter(value)
            current = self.gm.get_parameter(path) if _is_param(self.gm, path) else self.gm.get_buffer(path)
            if not torch.equal(fn(self.params[name].detach()).to(current.dtype), current):
                raise ModelError(f"gradient model: '{path}' is not initializer '{name}' as bound")
            self.slots.append((path, name, fn))
        self.frozen = sorted(wanted - set(self.params))  # float initializers no module slot reads

    def __call__(self, *inputs):
        from torch.func import functional_call

        values = {path: fn(self.params[name]) for path, name, fn in self.slots}
        out = functional_call(self.gm, values, tuple(inputs))
        return list(out) if isinstance(out, (tuple, list)) else [out]

    def state(self) -> dict[str, np.ndarray]:
        return {n: p.detach().numpy().copy() for n, p in self.params.items()}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        with self.torch.no_grad():
            for n, v in state.items():
                self.params[n].copy_(self.torch.from_numpy(v))

    def write_back(self, model: onnx.ModelProto) -> onnx.ModelProto:
        """A copy of `model` with the trained values in its initializers (same names, shapes, dtypes)."""
        out = copy.deepcopy(model)
        state = self.state()
        for i, t in enumerate(out.graph.initializer):
            if t.name in state:
                old = numpy_helper.to_array(t)
                new = numpy_helper.from_array(state[t.name].astype(old.dtype).reshape(old.shape), t.name)
                t.CopyFrom(new)
        return out


def _numel(t) -> int:
    return int(np.prod(t.dims)) if len(t.dims) else 1


def _is_param(gm, path: str) -> bool:
    try:
        gm.get_parameter(path)
        return True
    except AttributeError:
        return False


def training_copy(model: onnx.ModelProto, extra_outputs=()) -> onnx.ModelProto:
    """The same computation in a form onnx2torch converts: nodes named n0, n1, ... (torch module
    names), one Identity per output (so each output is one module's only result), Clip with
    run-time bounds as Max/Min, Reshape allowzero=1 dropped where its constant shape has no 0."""
    work = copy.deepcopy(model)
    g = work.graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    for n in g.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    nodes = []
    for n in g.node:
        if n.op_type == "Clip" and any(x and x not in consts for x in n.input[1:]):
            cur = n.input[0]
            for k, op in ((2, "Min"), (1, "Max")):
                if len(n.input) > k and n.input[k]:
                    out = f"{n.output[0]}__{op}"
                    nodes.append(helper.make_node(op, [cur, n.input[k]], [out]))
                    cur = out
            nodes.append(helper.make_node("Identity", [cur], [n.output[0]]))
            continue
        if n.op_type == "Reshape" and any(a.name == "allowzero" and a.i for a in n.attribute):
            shape = consts.get(n.input[1])
            if shape is None or (shape == 0).any():
                raise ModelError(f"Reshape '{n.name}' with allowzero=1 and a zero or run-time shape")
            keep = [a for a in n.attribute if a.name != "allowzero"]
            del n.attribute[:]
            n.attribute.extend(keep)
        nodes.append(n)
    types = _elem_types(model)
    outputs = [o.name for o in g.output] + list(extra_outputs)
    for k, name in enumerate(outputs):
        nodes.append(helper.make_node("Identity", [name], [f"__out{k}"]))
    del g.node[:]
    g.node.extend(nodes)
    for i, n in enumerate(g.node):
        n.name = f"n{i}"
    del g.output[:]
    g.output.extend(helper.make_tensor_value_info(f"__out{k}", types.get(name, onnx.TensorProto.FLOAT), None)
                    for k, name in enumerate(outputs))
    return work


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:
        inferred = model
    g = inferred.graph
    return {v.name: v.type.tensor_type.elem_type for v in list(g.value_info) + list(g.output) + list(g.input)}


def _bind(gm, work: onnx.ModelProto, inits: dict) -> list[tuple]:
    """(module path, initializer name, ONNX value -> slot value) for every slot that holds an
    initializer: onnx2torch's buffer container (read by ops that take weights as inputs) and the
    modules that absorb weights (Conv, Gemm as Linear, BatchNorm, LayerNorm)."""
    import torch.nn as nn

    slots, k = [], 0
    for node in work.graph.node:
        module = gm.get_submodule(node.name)
        for v in getattr(module, "onnx_mapping").inputs:
            if v in inits:  # the converter's own numbering of its initializer buffers
                slots.append((f"initializers.onnx_initializer_{k}", v, _same))
                k += 1
        ins = list(node.input) + [""] * 5
        if isinstance(module, nn.Sequential):  # padding module + conv
            module = module[-1]
            prefix = f"{node.name}.{len(gm.get_submodule(node.name)) - 1}"
        else:
            prefix = node.name
        if isinstance(module, (nn.modules.conv._ConvNd, nn.modules.batchnorm._BatchNorm, nn.LayerNorm)):
            slots += [(f"{prefix}.weight", ins[1], _same)] + ([(f"{prefix}.bias", ins[2], _same)] if ins[2] else [])
        elif isinstance(module, nn.Linear) and node.op_type == "Gemm":
            a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
            alpha, beta, trans_b = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0)), bool(a.get("transB", 0))
            slots.append((f"{prefix}.weight", ins[1], lambda b, al=alpha, t=trans_b: (b if t else b.t()) * al))
            if ins[2]:
                slots.append((f"{prefix}.bias", ins[2], lambda c, be=beta: c * be))
    return [s for s in slots if s[1] in inits]


def _same(x):
    return x


def check(model: onnx.ModelProto, tm: TorchModel, feeds: list[dict], *, tol: float = 1e-4) -> float:
    """Largest |torch - onnxruntime| over the feeds, relative to the outputs' scale; raises
    ModelError above `tol` (a converted model is never used unchecked)."""
    from ..core.runtime import make_session

    torch = tm.torch
    sess = make_session(model, threads=1)
    names = [o.name for o in model.graph.output]
    worst = 0.0
    with torch.no_grad():
        for feed in feeds:
            ref = sess.run(names, feed)
            got = tm(*[torch.from_numpy(np.asarray(feed[n])) for n in tm.input_names])
            for name, r, t in zip(names, ref, got):
                r = np.asarray(r, np.float64)
                diff = float(np.max(np.abs(r - t.double().numpy()))) if r.size else 0.0
                worst = max(worst, diff / max(1.0, float(np.max(np.abs(r))) if r.size else 1.0))
    if not worst <= tol:
        raise ModelError(f"gradient model differs from onnxruntime by {worst:.3g} (relative; tolerance {tol:g})")
    return worst
