"""Compensation: pruned == compensated reference always; exact recovery of constant channels with
`bias`; `lstsq` must beat no compensation where the kept channels can explain the removed ones."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from onnx import TensorProto, helper, numpy_helper

import onnxprune
from onnxprune.core.io import fingerprint
from onnxprune.prune.plan import Plan, group_names
from onnxprune.core.runtime import make_session

from builders import GraphBuilder, run

C = 8  # channels of the group whose one constant channel gets removed


def _constant_channel_model(consumer: str, seed: int = 0) -> tuple[onnx.ModelProto, str]:
    """x -> producer (channel 0 has zero weights and bias 1.5, so after Relu it is always 1.5)
    -> Relu -> consumer -> output. Returns the model and the input name."""
    b = GraphBuilder(seed=seed)
    rng = b.rng
    if consumer in ("conv1x1", "conv3x3"):
        x = b.input("x", [1, 3, 6, 6])
        w = b.weight(C, 3, 3, 3)
        w[0] = 0
        bias = rng.standard_normal(C) * 0.1
        bias[0] = 1.5
        h = b.op("Relu", [b.op("Conv", [x, b.const(w), b.const(bias)], kernel_shape=[3, 3], pads=[1, 1, 1, 1])])
        k = 1 if consumer == "conv1x1" else 3
        y = b.op("Conv", [h, b.const(b.weight(5, C, k, k))], kernel_shape=[k, k], pads=[0] * 4)
        return b.model([y], ir_version=10), "x"
    x = b.input("x", [5, 2, 6] if consumer in ("lstm", "gru") else [4, 6])
    w = b.weight(6, C, axis0_spread=False)
    w[:, 0] = 0
    bias = rng.standard_normal(C) * 0.1
    bias[0] = 1.5
    h = b.op("Relu", [b.op("Add", [b.op("MatMul", [x, b.const(w)]), b.const(bias)])])
    if consumer == "gemm":
        y = b.gemm(h, C, 5, trans_b=True)
    elif consumer == "gemm_alpha_beta":  # C of shape (1, N), alpha and beta not 1
        y = b.op("Gemm", [h, b.const(b.weight(C, 5, axis0_spread=False)), b.const(b.rng.standard_normal((1, 5)))],
                 alpha=0.5, beta=2.0)
    elif consumer == "matmul":  # no bias: compensation must insert an Add
        y = b.op("MatMul", [h, b.const(b.weight(C, 5, axis0_spread=False))])
    elif consumer == "lstm":
        hidden = 3
        y = b.op("LSTM", [h, b.const(b.weight(1, 4 * hidden, C)), b.const(b.weight(1, 4 * hidden, hidden))],
                 n_out=1, hidden_size=hidden)
    elif consumer == "gru":
        hidden = 3
        y = b.op("GRU", [h, b.const(b.weight(1, 3 * hidden, C)), b.const(b.weight(1, 3 * hidden, hidden)),
                         b.const(b.rng.standard_normal((1, 6 * hidden)))], n_out=1, hidden_size=hidden)
    return b.model([y], ir_version=10), "x"


def _feeds(model, n, seed):
    sess = make_session(model)
    inp = sess.get_inputs()[0]
    rng = np.random.default_rng(seed)
    return [{inp.name: rng.standard_normal([d if isinstance(d, int) else 1 for d in inp.shape]).astype(np.float32)}
            for _ in range(n)]


def _plan_removing(model, channels) -> Plan:
    """A plan that removes exactly `channels` of the one prunable group."""
    analysis = onnxprune.analyze(model)
    names = group_names(analysis)
    plan = Plan(fingerprint(model))
    for g in analysis.groups:
        plan.sizes[names[g.id]] = g.size
        plan.groups[names[g.id]] = [i for i in range(g.size) if not (g.prunable and i in channels)]
    assert sum(g.prunable for g in analysis.groups) == 1
    return plan


def _max_diff(a, b, feeds):
    sa, sb = make_session(a), make_session(b)
    return max(float(np.max(np.abs(sa.run(None, f)[0] - sb.run(None, f)[0]))) for f in feeds)


CONSUMERS = ["conv1x1", "conv3x3", "gemm", "gemm_alpha_beta", "matmul", "lstm", "gru"]


@pytest.mark.parametrize("consumer", CONSUMERS)
@pytest.mark.parametrize("method", ["bias", "lstsq"])
def test_compensation_recovers_a_constant_channel(consumer, method):
    model, _ = _constant_channel_model(consumer)
    cal, held_out = _feeds(model, 16, 0), _feeds(model, 4, 1)
    plan = _plan_removing(model, {0})
    plain = onnxprune.prune(model, plan=plan)
    comp = onnxprune.prune(model, plan=plan, compensate=method, calibration=cal)
    assert comp.verify.passed, comp.verify.message
    onnx.checker.check_model(comp.model, full_check=True)
    assert any(layer["channels_before"] == C and layer["channels_after"] == C - 1 for layer in comp.layers)
    assert _max_diff(plain.model, model, held_out) > 1e-2  # removing it without compensation is visible
    assert _max_diff(comp.model, model, held_out) < 1e-4  # compensated: the original's output
    row = next(r for r in comp.compensation if r["inputs_removed"])
    assert row["method"] == "bias"  # lstsq keeps bias where bias is already exact (no lower error)
    assert _max_diff(comp.model, comp.reference, held_out) <= 1e-5


def test_kxk_conv_refits_over_kernel_windows_exactly():
    """A removed channel that is twice a kept one (h1 = 2 h0 everywhere, padding included): a padded
    3x3 consumer's lstsq refit over im2col windows moves its kernel onto h0 and reproduces the
    original; the bias estimate alone cannot (the channel varies)."""
    b = GraphBuilder(seed=3)
    x = b.input("x", [1, 3, 7, 7])
    w = b.weight(C, 3, 3, 3)
    w[1] = 2 * w[0]
    bias = b.rng.standard_normal(C) * 0.1
    bias[1] = 2 * bias[0]
    h = b.op("Relu", [b.op("Conv", [x, b.const(w), b.const(bias)], kernel_shape=[3, 3], pads=[1, 1, 1, 1])])
    y = b.op("Conv", [h, b.const(b.weight(5, C, 3, 3)), b.const(b.rng.standard_normal(5))], kernel_shape=[3, 3],
             pads=[1, 0, 1, 2], strides=[1, 2])
    model = b.model([y], ir_version=10)
    cal, held_out = _feeds(model, 8, 0), _feeds(model, 3, 1)
    plan = _plan_removing(model, {1})
    by_bias = onnxprune.prune(model, plan=plan, compensate="bias", calibration=cal)
    comp = onnxprune.prune(model, plan=plan, compensate="lstsq", calibration=cal)
    assert comp.verify.passed and by_bias.verify.passed
    row = next(r for r in comp.compensation if r["inputs_removed"])
    assert row["method"] == "lstsq" and row["error_after"] < 1e-8 < row["error_none"]
    assert _max_diff(by_bias.model, model, held_out) > 1e-2
    assert _max_diff(comp.model, model, held_out) < 1e-4


def _redundant_model(seed=0, second="gemm") -> onnx.ModelProto:
    """x (6 features) -> Gemm to 16 channels (rank 6: each channel a mix of the inputs) -> Gemm 16 -> 4.
    Any 8 kept channels span the same space, so a refit can reproduce the output."""
    b = GraphBuilder(seed=seed)
    x = b.input("x", [8, 6])
    h = b.gemm(x, 6, 16)
    if second == "gemm":
        y = b.gemm(h, 16, 4)
    elif second == "gemm_alpha_beta":
        y = b.op("Gemm", [h, b.const(b.weight(4, 16)), b.const(b.rng.standard_normal((1, 4)))], alpha=0.5, beta=2.0,
                 transB=1)
    else:  # a bias-less MatMul: lstsq's new bias needs a new Add
        y = b.matmul(h, 16, 4)
    return b.model([y], ir_version=10)


@pytest.mark.parametrize("second", ["gemm", "gemm_alpha_beta", "matmul"])
def test_lstsq_reduces_consumer_output_error_vs_none_and_bias(second):
    model = _redundant_model(second=second)
    cal, held_out = _feeds(model, 32, 0), _feeds(model, 8, 1)
    errors = {}
    for method in ("none", "bias", "lstsq"):
        r = onnxprune.prune(model, ratio=0.5, round_to=1, compensate=method,
                            calibration=cal if method != "none" else None)
        assert r.verify.passed
        so, sp = make_session(model), make_session(r.model)
        errors[method] = float(np.mean([np.mean((so.run(None, f)[0] - sp.run(None, f)[0]) ** 2) for f in held_out]))
    assert errors["lstsq"] < 1e-3 * errors["none"]
    assert errors["lstsq"] <= errors["bias"]
    row = r.compensation[0]
    assert row["error_after"] < row["error_none"]


def _random_chain(seed: int, kinds: list[str]) -> onnx.ModelProto:
    b = GraphBuilder(seed=seed)
    x = b.input("x", [1, 4, 5, 5])
    c = 4
    for kind in kinds:
        n = int(b.rng.integers(4, 9))
        if kind == "conv3":
            x = b.op("Relu", [b.conv(x, c, n, k=3)])
        elif kind == "conv1":
            x = b.conv(x, c, n, k=1, bias=bool(b.rng.integers(0, 2)))
        else:
            x = b.op("Sigmoid", [b.conv(x, c, n, k=1)])
        c = n
    x = b.op("Flatten", [b.op("GlobalAveragePool", [x])])
    y = b.gemm(b.op("Relu", [b.gemm(x, c, 6)]), 6, 3)
    return b.model([y], ir_version=10)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), kinds=st.lists(st.sampled_from(["conv3", "conv1", "sig"]), min_size=1, max_size=3),
       ratio=st.sampled_from([0.25, 0.5, 0.7]), method=st.sampled_from(["bias", "lstsq"]),
       criterion=st.sampled_from(["l1", "activation", "reconstruction"]))
def test_compensated_pruned_model_equals_its_compensated_reference(seed, kinds, ratio, method, criterion):
    model = _random_chain(seed, kinds)
    cal = _feeds(model, 6, seed)
    r = onnxprune.prune(model, ratio=ratio, round_to=1, compensate=method, criterion=criterion, calibration=cal)
    assert r.verify.passed, r.verify.message
    assert _max_diff(r.model, r.reference, cal[:2]) <= 1e-4
    assert {row["method"] for row in r.compensation} <= {"bias", "lstsq"}


@pytest.mark.realmodel
@pytest.mark.parametrize("name, shapes", [("silero_vad_v6", {"input": [1, 576]}), ("melspectrogram", {"input": [1, 1280]})])
@pytest.mark.parametrize("method", ["bias", "lstsq"])
def test_real_models_compensated_verify(real_model, name, shapes, method):
    """Real conv (and conv -> LSTM) models: compensated pruning still verifies against its reference,
    and lstsq/bias bring the output closer to the original than no compensation does."""
    model = onnxprune.load_model(real_model(name))
    sess = make_session(model)
    rng = np.random.default_rng(0)
    feeds = []
    for _ in range(24):  # band-limited noise bursts, state at zero as a caller starts
        f = {i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape], np.float32) for i in sess.get_inputs()}
        f.update({k: (np.cumsum(rng.standard_normal(v), axis=-1) * 0.01).astype(np.float32) for k, v in shapes.items()})
        feeds.append(f)
    cal, held_out = feeds[:16], feeds[16:]
    plain = onnxprune.prune(model, ratio=0.5, shapes=shapes)
    comp = onnxprune.prune(model, ratio=0.5, shapes=shapes, compensate=method, calibration=cal)
    assert comp.verify.passed, comp.verify.message
    assert {r["method"] for r in comp.compensation} <= {"bias", "lstsq"} and comp.compensation
    so, sp, sc = make_session(model), make_session(plain.model), make_session(comp.model)
    err = lambda s: np.mean([np.mean((s.run(None, f)[0] - so.run(None, f)[0]) ** 2) for f in held_out])  # noqa: E731
    assert err(sc) <= err(sp)  # melspectrogram: l1 removes bins the mel matrix ignores, both exact
