"""The gradient engine: converted models equal onnxruntime, gradients equal finite differences,
values written back land in the right initializers."""

from pathlib import Path

import numpy as np
import onnx
import pytest

from onnxprune.recover._deps import available

if not available():
    pytest.skip("needs the recover extra (torch, onnx2torch)", allow_module_level=True)

import torch  # noqa: E402

from onnxprune.recover.engine import TorchModel, check  # noqa: E402
from onnxprune.core.runtime import make_session  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MODELS = ["models/zoo/kws_dscnn.onnx", "models/zoo/crnn_ctc_dynamo.onnx", "models/zoo/intent_lstm.onnx",
          "models/fixtures/lstm2_dynamo.onnx", "models/fixtures/transformer_dynamo.onnx",
          "models/fixtures/conformer_dynamo.onnx", "onnxprune/assets/kws_dscnn.onnx"]


def feeds(model, count=2, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        feed = {}
        for i in make_session(model).get_inputs():
            shape = [d if isinstance(d, int) else (1 if k == 0 else 20) for k, d in enumerate(i.shape)]
            if "int" in i.type:
                feed[i.name] = rng.integers(0, 10, shape).astype(np.int64)
            else:
                feed[i.name] = rng.standard_normal(shape).astype(np.float32)
        out.append(feed)
    return out


@pytest.mark.parametrize("path", MODELS)
def test_converted_model_matches_onnxruntime(path):
    model = onnx.load(ROOT / path)
    tm = TorchModel(model)
    assert check(model, tm, feeds(model), tol=1e-5) <= 1e-5
    assert tm.params, "no trainable initializer found"


@pytest.mark.parametrize("path", ["models/zoo/kws_dscnn.onnx", "models/fixtures/cnn_bigru_ctc_ts.onnx"])
def test_gradients_match_finite_differences(path):
    """Directional derivatives in float64: (L(p + e v) - L(p - e v)) / 2e against grad . v."""
    model = onnx.load(ROOT / path)
    tm = TorchModel(model)
    tm.gm.double()
    for p in tm.params.values():
        p.data = p.data.double()
        p.requires_grad_(True)
    x = [torch.from_numpy(v).double() for v in feeds(model, 1)[0].values()]
    gen = torch.Generator().manual_seed(0)
    weights = [torch.randn(o.shape, generator=gen, dtype=torch.float64) for o in tm(*x)]

    def loss():
        return sum((o * w).sum() for o, w in zip(tm(*x), weights))

    loss().backward()
    grads = {n: p.grad.clone() for n, p in tm.params.items()}
    assert all(g.abs().sum() > 0 for g in grads.values())
    for trial in range(2):
        v = {n: torch.randn(p.shape, generator=gen, dtype=torch.float64) for n, p in tm.params.items()}
        analytic = float(sum((grads[n] * v[n]).sum() for n in grads))
        errors = []
        for eps in (1e-6, 1e-7, 1e-8):  # a ReLU kink within eps of a step spoils one, not all
            with torch.no_grad():
                for n, p in tm.params.items():
                    p.add_(eps * v[n])
                up = loss().item()
                for n, p in tm.params.items():
                    p.sub_(2 * eps * v[n])
                down = loss().item()
                for n, p in tm.params.items():
                    p.add_(eps * v[n])
            errors.append(abs((up - down) / (2 * eps) - analytic))
        assert min(errors) <= 1e-6 * max(1.0, abs(analytic)), (trial, errors, analytic)


def test_write_back_lands_in_the_right_initializers():
    """Perturb every trained value in torch, write back, and onnxruntime must agree with torch
    (a wrong transpose or a swapped initializer would not)."""
    model = onnx.load(ROOT / "models/zoo/kws_dscnn.onnx")
    tm = TorchModel(model)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in tm.params.values():
            p.add_(0.05 * torch.randn(p.shape, generator=gen) * p.abs().mean())
    written = tm.write_back(model)
    assert check(written, tm, feeds(model), tol=1e-5) <= 1e-5
    assert check(written, TorchModel(written), feeds(model), tol=1e-5) <= 1e-5
    with pytest.raises(Exception):
        check(model, tm, feeds(model), tol=1e-5)  # the unperturbed file no longer matches


def test_ops_onnx2torch_lacks_match_onnxruntime():
    """Clip with run-time bounds, Pad-18 with axes, Split-18 num_outputs, ReduceMean-18 axes input,
    Reshape allowzero=1, GreaterOrEqual-16 in one opset-18 graph."""
    from onnx import TensorProto, helper, numpy_helper

    f = TensorProto.FLOAT
    nodes = [
        helper.make_node("Clip", ["x", "lo", "hi"], ["c"]),
        helper.make_node("Pad", ["c", "pads", "", "axes"], ["p"], mode="edge"),
        helper.make_node("Split", ["p"], ["s0", "s1"], axis=2, num_outputs=2),
        helper.make_node("ReduceMean", ["s0", "raxes"], ["m"], keepdims=1),
        helper.make_node("Mul", ["s1", "w"], ["sw"]),
        helper.make_node("Reshape", ["sw", "shape"], ["r"], allowzero=1),
        helper.make_node("GreaterOrEqual", ["r", "zero"], ["ge"]),
        helper.make_node("Cast", ["ge"], ["gef"], to=f),
        helper.make_node("Add", ["r", "gef"], ["y"]),
    ]
    inits = [numpy_helper.from_array(np.array([1, 2], np.int64), "pads"),
             numpy_helper.from_array(np.array([2], np.int64), "axes"),
             numpy_helper.from_array(np.array([1], np.int64), "raxes"),
             numpy_helper.from_array(np.linspace(-1, 1, 3, dtype=np.float32).reshape(1, 1, 3), "w"),
             numpy_helper.from_array(np.array([2, -1], np.int64), "shape"),
             numpy_helper.from_array(np.array(0.0, np.float32), "zero")]
    graph = helper.make_graph(nodes, "ops", [helper.make_tensor_value_info("x", f, [2, 3, 4]),
                                             helper.make_tensor_value_info("lo", f, []),
                                             helper.make_tensor_value_info("hi", f, [])],
                              [helper.make_tensor_value_info("y", f, None), helper.make_tensor_value_info("m", f, None)],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    rng = np.random.default_rng(0)
    fs = [{"x": rng.standard_normal((2, 3, 4)).astype(np.float32), "lo": np.array(-0.5, np.float32),
           "hi": np.array(0.7, np.float32)} for _ in range(2)]
    tm = TorchModel(model)
    assert check(model, tm, fs, tol=1e-6) <= 1e-6
    assert set(tm.params) == {"w"}
