"""`--frontend FRONT.onnx`: an ONNX model that turns the waveform into the model's input
(e.g. openwakeword's melspectrogram.onnx in front of embedding_model.onnx).

Pre/post scaling a front-end needs (openwakeword feeds int16-range floats and maps the mel output
by x/10 + 2) is baked into a wrapper model by `with_affine` (script: models/wrap_frontend.py), so
the data options stay few and the exact transform is a file anyone can inspect.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import ModelError, first_line
from ..core.io import clamp_ir_version, load_model
from ..core.runtime import make_session
from .config import DataError
from .fit import input_specs, is_waveform, shape_text


class Frontend:
    """A one-input front-end model run by onnxruntime on one clip at a time."""

    def __init__(self, path: str):
        try:
            model = load_model(path)
        except ModelError as exc:
            raise DataError(f"--frontend {exc}") from None
        specs = input_specs(model)
        if len(specs) != 1 or not (len(specs[0].dims) == 1 or is_waveform(specs[0])):
            shapes = ", ".join(f"{s.name} {shape_text(s.dims)}" for s in specs)
            raise DataError(f"--frontend {path}: expected one waveform input [T], [B,T] or [B,1,T], has {shapes}")
        self.path = path
        self.spec = specs[0]
        try:
            self.session = make_session(model)
        except Exception as exc:
            raise DataError(f"--frontend {path}: onnxruntime cannot load it ({first_line(exc)})") from None

    def __call__(self, samples: np.ndarray, source: str) -> np.ndarray:
        from .audio import to_dtype

        fixed = self.spec.dims[-1]
        if fixed is not None and fixed != len(samples):
            raise DataError(f"{source}: front-end {self.path} takes exactly {fixed} samples, clip has "
                            f"{len(samples)}; use a front-end with a symbolic length")
        x = to_dtype(samples, self.spec.dtype).reshape((1,) * (len(self.spec.dims) - 1) + (-1,))
        try:
            return self.session.run(None, {self.spec.name: x})[0]
        except Exception as exc:
            raise DataError(f"{source}: front-end {self.path} failed on {len(samples)} samples "
                            f"({first_line(exc)})") from None


def with_affine(model: onnx.ModelProto, in_scale: float = 1.0, out_scale: float = 1.0,
                out_shift: float = 0.0) -> onnx.ModelProto:
    """A copy of one-input/first-output `model` computing out_scale * f(in_scale * x) + out_shift."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    x, y = g.input[0].name, g.output[0].name
    raw, pre = f"{x}__unscaled", f"{y}__raw"
    for node in g.node:
        node.input[:] = [raw if i == x else i for i in node.input]
        node.output[:] = [pre if o == y else o for o in node.output]
    dtype = onnx.helper.tensor_dtype_to_np_dtype(g.input[0].type.tensor_type.elem_type)
    consts = [numpy_helper.from_array(np.array(v, dtype=dtype), n) for n, v in
              (("affine_in_scale", in_scale), ("affine_out_scale", out_scale), ("affine_out_shift", out_shift))]
    g.initializer.extend(consts)
    g.node.insert(0, helper.make_node("Mul", [x, "affine_in_scale"], [raw], name="affine_in"))
    g.node.extend([helper.make_node("Mul", [pre, "affine_out_scale"], [f"{y}__scaled"], name="affine_scale"),
                   helper.make_node("Add", [f"{y}__scaled", "affine_out_shift"], [y], name="affine_shift")])
    clamp_ir_version(m)
    return m
