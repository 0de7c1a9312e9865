"""Low-rank factorization: exact on exactly rank-r weights, verified against A.B in the original
layer, data-aware beats plain SVD on correlated inputs, ranks recorded and replayed."""

from pathlib import Path

import numpy as np
import onnx
import pytest

import onnxprune
from builders import GraphBuilder, run
from onnxprune.core.runtime import make_session, random_feeds
from onnxprune.prune.lowrank import factor, factorize, find_layers, input_moments, rank_for
from onnxprune.prune.plan import Plan
from onnxprune.prune.verify import verify

FIXTURES = Path(__file__).resolve().parents[2] / "models" / "fixtures"
RANK = 3


def low_rank_model(kind: str, seed: int = 0):
    """One layer whose weight has rank exactly RANK."""
    b = GraphBuilder(seed)
    rng = b.rng
    if kind in ("matmul", "gemm", "gemm_t"):
        x = b.input("x", [8, 32])
        w = rng.standard_normal((32, RANK)) @ rng.standard_normal((RANK, 48))
        if kind == "matmul":
            y = b.op("Add", [b.op("MatMul", [x, b.const(w)]), b.const(np.ones(48))])
        else:
            t = kind == "gemm_t"
            y = b.op("Gemm", [x, b.const(w.T if t else w), b.const(np.ones(48))], transB=int(t), alpha=0.5)
    elif kind == "conv":
        x = b.input("x", [1, 32, 6, 6])
        w = (rng.standard_normal((48, RANK)) @ rng.standard_normal((RANK, 32))).reshape(48, 32, 1, 1)
        y = b.op("Conv", [x, b.const(w), b.const(np.ones(48))], kernel_shape=[1, 1], strides=[2, 2])
    else:  # lstm / gru, bidirectional: both directions share the input factor
        x = b.input("x", [5, 2, 32])
        gates, hidden = (4 if kind == "lstm" else 3), 16
        w = (rng.standard_normal((2 * gates * hidden, RANK)) @ rng.standard_normal((RANK, 32)))
        y = b.op(kind.upper(), [x, b.const(w.reshape(2, gates * hidden, 32)),
                                b.const(rng.standard_normal((2, gates * hidden, hidden)) * 0.2),
                                b.const(rng.standard_normal((2, 2 * gates * hidden)) * 0.1)],
                 hidden_size=hidden, direction="bidirectional")
    return b.model([y])


def _feeds(model, n=4, seed=0):
    sess = make_session(model)
    return [random_feeds(sess, {}, seed + i) for i in range(n)]


@pytest.mark.parametrize("kind", ["matmul", "gemm", "gemm_t", "conv", "lstm", "gru"])
@pytest.mark.parametrize("method", ["svd", "whiten"])
def test_exact_rank_weight_factorizes_exactly(kind, method):
    model = low_rank_model(kind)
    (layer,) = find_layers(model)
    feeds = _feeds(model)
    moments = input_moments(model, [layer], feeds) if method != "svd" else None
    pruned, reference, rows = factorize(model, {layer.name: RANK}, method=method, moments=moments)
    assert rows[0]["weights_after"] < rows[0]["weights_before"]
    assert verify(pruned, reference, {}).passed
    for feed in feeds:
        for a, b in zip(run(model, feed), run(pruned, feed)):
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4 * float(np.abs(a).max()))
    assert len(pruned.graph.node) == len(model.graph.node) + 1


def test_truncation_is_verified_against_the_product_in_the_original_layer():
    model = low_rank_model("matmul")
    (layer,) = find_layers(model)
    pruned, reference, _ = factorize(model, {layer.name: 1}, method="svd")
    feed = _feeds(model, 1)[0]
    assert not np.allclose(run(model, feed)[0], run(pruned, feed)[0], atol=1e-3)
    assert verify(pruned, reference, {}).passed


def test_whitening_beats_plain_svd_on_correlated_inputs():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((32, 32))
    mix = rng.standard_normal((32, 4)) @ rng.standard_normal((4, 32)) + 0.05 * rng.standard_normal((32, 32))
    x = rng.standard_normal((4000, 32)) @ mix + 0.3
    aug = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    moment = aug.T @ aug / len(x)
    held = rng.standard_normal((1000, 32)) @ mix + 0.3
    errors = {}
    for method in ("svd", "asvd", "whiten"):
        a, b, shift = factor(w, 4, method=method, moment=moment)
        errors[method] = float(np.mean((held @ w - (held @ a @ b + shift)) ** 2))
    assert errors["whiten"] < 0.1 * errors["svd"], errors


def test_rank_for_saves_macs_and_skips_small_layers():
    model = onnx.load(FIXTURES / "transformer_dynamo.onnx")
    for layer in find_layers(model):
        r = rank_for(layer, 0.5)
        if r is not None:
            assert r * (layer.k + layer.n) <= 0.5 * layer.k * layer.n and r % 4 == 0
        else:
            assert layer.k * layer.n < 4096


def test_low_rank_with_widths_records_ranks_and_replays_byte_identically():
    model = onnx.load(FIXTURES / "transformer_dynamo.onnx")
    sess = make_session(model)
    calib = [random_feeds(sess, {}, i) for i in range(8)]
    first = onnxprune.prune(model, ratio=0.25, low_rank=0.5, calibration=calib)
    lowrank = next(s for s in first.steps if s["step"] == "lowrank")
    assert lowrank["verify"]["passed"] and lowrank["method"] == "whiten"
    assert first.after["macs"] < first.before["macs"]
    plan = Plan.from_json(first.plan.to_json())
    assert plan.ranks and plan.ranks == {r["layer"]: r["rank"] for r in lowrank["layers"]}
    again = onnxprune.prune(model, ratio=0.25, plan=plan, calibration=calib)
    assert again.model.SerializeToString() == first.model.SerializeToString()
