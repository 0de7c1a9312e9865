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
