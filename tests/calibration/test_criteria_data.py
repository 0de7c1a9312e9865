"""Calibration statistics and the data-aware criteria, plus the errors a user can make with them."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

import onnxprune
from onnxprune.calibration.statistics import calibrate
from onnxprune.cli.main import main
from onnxprune.calibration.criteria import score_group_data
from onnxprune.errors import UsageError
from onnxprune.core.runtime import make_session

from builders import GraphBuilder

DEAD = 2  # channel made dead by construction: large negative bias before a Relu


def _dead_channel_model(seed=0, batch=8) -> tuple[onnx.ModelProto, np.ndarray, np.ndarray]:
    """x (batch, 6) -> Gemm to 6 channels (channel DEAD: bias -100, so always 0 after Relu) -> Relu -> Gemm -> 3."""
    b = GraphBuilder(seed=seed)
    x = b.input("x", [batch, 6])
    w = b.weight(6, 6).T
    bias = b.rng.standard_normal(6) * 0.1
    bias[DEAD] = -100.0
    h = b.op("Relu", [b.op("Gemm", [x, b.const(w), b.const(bias)])])
    y = b.gemm(h, 6, 3)
    return b.model([y], ir_version=10), w, bias


def _feeds(n, seed=0, shape=(8, 6)):
    rng = np.random.default_rng(seed)
    return [{"x": rng.standard_normal(shape).astype(np.float32)} for _ in range(n)]


def test_calibration_statistics_match_numpy():
    model, w, bias = _dead_channel_model()
    feeds = _feeds(5)
    analysis = onnxprune.analyze(model)
    calib = calibrate(analysis, feeds, moments=True)
    site = next(s for s in calib.sites if s.kind == "gemm")
    h = np.concatenate([np.maximum(f["x"].astype(np.float64) @ w + bias, 0) for f in feeds])
    st = calib.of(site)
    assert calib.examples == 5 and st.n == 40
    assert np.allclose(st.mean, h.mean(axis=0), atol=1e-5)
    assert np.allclose(st.mean_abs, np.abs(h).mean(axis=0), atol=1e-5)
    assert np.allclose(st.apoz, (h <= 0).mean(axis=0))
    aug = np.concatenate([h, np.ones((len(h), 1))], axis=1)
    assert np.allclose(calib.moment(site), aug.T @ aug / len(h), atol=1e-4)


@pytest.mark.parametrize("criterion", ["activation", "reconstruction"])
def test_data_criteria_rank_a_dead_channel_lowest(criterion):
    model, _, _ = _dead_channel_model()
    analysis = onnxprune.analyze(model)
    calib = calibrate(analysis, _feeds(10), moments=True)
    group = next(g for g in analysis.groups if g.prunable)
    scores = score_group_data(analysis, group, criterion, calib)
    assert int(np.argmin(scores)) == DEAD
    r = onnxprune.prune(model, ratio=0.2, round_to=1, criterion=criterion, calibration=_feeds(10))
    row = next(g for g in r.groups if g["prunable"])
    assert DEAD not in r.plan.groups[row["name"]] and row["kept"] == 5
    assert row["dead_channels"] == 1 and row["apoz_mean"] >= 1 / 6
    assert row["criterion"] == criterion
    assert r.verify.passed


def test_reconstruction_sees_what_activation_cannot():
    """A busy channel that no consumer weight reads costs nothing to remove: reconstruction ranks it
    lowest, activation (which looks at the channel alone) does not."""
    b = GraphBuilder(seed=1)
    x = b.input("x", [8, 6])
    w1 = b.weight(6, 6).T
    w1[:, 4] *= 10  # channel 4: by far the largest activations
    h = b.op("Relu", [b.op("Gemm", [x, b.const(w1), b.const(np.full(6, 0.5))])])
    w2 = b.weight(3, 6).T
    w2[4, :] = 0  # ... which the consumer ignores
    model = b.model([b.op("Gemm", [h, b.const(w2)])], ir_version=10)
    analysis = onnxprune.analyze(model)
    calib = calibrate(analysis, _feeds(10), moments=True)
    group = next(g for g in analysis.groups if g.prunable)
    assert int(np.argmin(score_group_data(analysis, group, "reconstruction", calib))) == 4
    assert int(np.argmax(score_group_data(analysis, group, "activation", calib))) == 4


def test_data_criteria_without_calibration_is_a_usage_error():
    model, _, _ = _dead_channel_model()
    with pytest.raises(UsageError, match="needs calibration data"):
        onnxprune.prune(model, criterion="activation")
    with pytest.raises(UsageError, match="needs calibration data"):
        onnxprune.prune(model, compensate="bias")
    with pytest.raises(UsageError, match="unknown compensation"):
        onnxprune.prune(model, compensate="magic", calibration=_feeds(2))
    with pytest.raises(UsageError, match="no examples"):
        onnxprune.prune(model, criterion="activation", calibration=[])


@pytest.fixture()
def files(tmp_path):
    model, _, _ = _dead_channel_model(batch=1)  # .npz dumps: one example per row, fed as batch 1
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "cal.npz", x=rng.standard_normal((20, 6)).astype(np.float32))
    np.savez(tmp_path / "bad.npz", x=rng.standard_normal((6, 7)).astype(np.float32))
    return tmp_path, path


@pytest.mark.parametrize("args, message", [
    (["--criterion", "activation"], "--criterion activation needs calibration data"),
    (["--compensate", "lstsq"], "--compensate lstsq needs calibration data"),
    (["--compensate", "bias", "--data", "{d}/bad.npz"], "calibration example 1 does not fit the model"),
    (["--compensate", "bias", "--data", "{d}/missing.npz"], "no such file"),
])
def test_cli_errors_are_one_line_and_write_nothing(files, args, message):
    d, path = files
    out = d / "out.onnx"
    before = path.read_bytes()
    res = CliRunner().invoke(main, ["prune", str(path), str(out)] + [a.format(d=d) for a in args])
    assert res.exit_code == 2, res.output
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], res.output
    assert "Traceback" not in res.output
    assert not out.exists() and path.read_bytes() == before


def test_cli_prune_with_data_reports_criterion_compensation_and_examples(files):
    d, path = files
    out, report = d / "out.onnx", d / "r.json"
    res = CliRunner().invoke(main, ["prune", str(path), str(out), "--criterion", "reconstruction", "--compensate",
                                    "lstsq", "--data", str(d / "cal.npz"), "--ratio", "0.5", "--round-to", "1",
                                    "--report", str(report)])
    assert res.exit_code == 0, res.output
    assert "data: criterion reconstruction, compensation lstsq, 20 calibration examples" in res.output
    data = json.loads(report.read_text())
    assert data["config"]["compensate"] == "lstsq" and data["config"]["calibration_examples"] == 20
    assert [row["method"] for row in data["compensation"]] == ["lstsq"]
    assert data["verify"]["passed"]
    make_session(onnx.load(out))


@pytest.mark.parametrize("kernel,pads,strides,dilations,auto_pad", [
    ((3, 3), (1, 1, 1, 1), (1, 1), (1, 1), "NOTSET"),
    ((3, 5), (0, 2, 1, 0), (2, 1), (1, 2), "NOTSET"),
    ((3, 3), (0, 0, 0, 0), (2, 2), (1, 1), "SAME_UPPER"),
    ((3, 3), (0, 0, 0, 0), (1, 2), (1, 1), "SAME_LOWER"),
    ((5,), (2, 1), (2,), (1,), "NOTSET"),
    ((3, 3), (0, 0, 0, 0), (1, 1), (2, 2), "VALID"),
])
def test_patch_rows_times_flat_kernel_is_the_conv(kernel, pads, strides, dilations, auto_pad):
    """im2col rows (what k x k compensation and the reconstruction criterion see) reproduce
    onnxruntime's Conv for every padding, stride and dilation form."""
    from onnx import helper, numpy_helper

    from onnxprune.calibration.statistics import patch_rows
    from onnxprune.core.runtime import make_session

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 9, 11)[:2 + len(kernel)]).astype(np.float32)
    w = rng.standard_normal((4, 3) + kernel).astype(np.float32)
    attrs = dict(kernel_shape=list(kernel), strides=list(strides), dilations=list(dilations))
    attrs.update(pads=list(pads)) if auto_pad == "NOTSET" else attrs.update(auto_pad=auto_pad)
    node = helper.make_node("Conv", ["x", "w"], ["y"], **attrs)
    vi = helper.make_tensor_value_info
    graph = helper.make_graph([node], "g", [vi("x", 1, None)], [vi("y", 1, None)], [numpy_helper.from_array(w, "w")])
    y = make_session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)).run(
        None, {"x": x})[0]
    geometry = (kernel, pads if auto_pad == "NOTSET" else (0,) * 2 * len(kernel), strides, dilations, auto_pad)
    rows = patch_rows(x, geometry)
    assert np.allclose(rows @ w.reshape(4, -1).T, np.moveaxis(y, 1, -1).reshape(-1, 4), atol=1e-5)


def _mixed_channel_model(seed=5) -> onnx.ModelProto:
    """x (8, 6) -> Gemm to 6 channels, no activation, where channel 3 = 2 * channel 0 - channel 1 (and
    by far the largest) -> Gemm 6 -> 3. A refit makes channel 3 free to remove."""
    b = GraphBuilder(seed=seed)
    x = b.input("x", [8, 6])
    w1 = b.weight(6, 6).T
    bias = b.rng.standard_normal(6) * 0.1
    w1[:, 3] = 5 * (2 * w1[:, 0] - w1[:, 1])
    bias[3] = 5 * (2 * bias[0] - bias[1])
    h = b.op("Gemm", [x, b.const(w1), b.const(bias)])
    return b.model([b.op("Gemm", [h, b.const(b.weight(3, 6).T)])], ir_version=10)


def test_reconstruction_with_refit_removes_a_predictable_channel_first():
    """Channels 0, 1 and 3 are linearly dependent, so a refit recovers any one of them exactly: the
    refit-aware order removes one of them first at no cost (lstsq then loses nothing); the no-refit
    order (as used with bias compensation) removes a small independent channel, which is lost."""
    model = _mixed_channel_model()
    analysis = onnxprune.analyze(model)
    calib = calibrate(analysis, _feeds(10), moments=True)
    group = next(g for g in analysis.groups if g.prunable)
    refit = score_group_data(analysis, group, "reconstruction", calib, refit=True)
    plain = score_group_data(analysis, group, "reconstruction", calib)
    first = int(np.argmin(refit))
    assert first in (0, 1, 3) and refit[first] < 1e-4 * np.median(refit)
    assert int(np.argmin(plain)) not in (0, 1, 3) and int(np.argmax(plain)) == 3
    errors = {}
    for refit_aware in (True, False):
        r = onnxprune.prune(model, ratio=0.2, round_to=1, criterion="reconstruction",
                            compensate="lstsq" if refit_aware else "bias", calibration=_feeds(10))
        assert r.verify.passed
        errors[refit_aware] = next(c for c in r.compensation if c["inputs_removed"])["error_after"]
    assert errors[True] < 1e-8 < 1e-4 < errors[False]


@pytest.mark.parametrize("ratio", [0.34, 0.5, 0.67])
def test_refit_order_cost_is_the_exact_refit_error(ratio):
    """The greedy's accumulated cost when the last channel of a removed set goes equals the error an
    optimal refit of the kept inputs (and a constant) leaves, tr(W_S (G/G_KK)_SS W_S^T), relative to
    the output energy: the sequential OBS updates are exact for the set."""
    from onnxprune.calibration.criteria import consumer_matrix

    b = GraphBuilder(seed=7)
    x = b.input("x", [8, 6])
    h = b.op("Relu", [b.gemm(x, 6, 6)])
    model = b.model([b.gemm(h, 6, 3)], ir_version=10)
    analysis = onnxprune.analyze(model)
    calib = calibrate(analysis, _feeds(12, seed=2), moments=True)
    group = next(g for g in analysis.groups if g.prunable)
    scores = score_group_data(analysis, group, "reconstruction", calib, refit=True)
    site = next(s for s in calib.sites if s.kind == "gemm" and s.param.labels.size == 6)
    w, g = consumer_matrix(analysis, site), calib.moment(site)
    removed = np.argsort(scores)[: int(round(ratio * 6))]
    kept = np.r_[np.setdiff1d(np.arange(6), removed), 6]  # the constant is always there
    schur = g[np.ix_(removed, removed)] - g[np.ix_(removed, kept)] @ np.linalg.solve(
        g[np.ix_(kept, kept)], g[np.ix_(kept, removed)])
    exact = np.trace(w[:, removed] @ schur @ w[:, removed].T) / np.trace(w @ g[:6, :6] @ w.T)
    assert max(scores[removed]) == pytest.approx(exact, rel=1e-3, abs=1e-9)
