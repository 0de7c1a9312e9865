"""Fidelity against the original when --allow-io-change resizes recurrent state: the original gets
the full state, the pruned model its kept units; state starts at zero and is carried from call to
call through each model (a streaming caller); resized outputs are compared on their kept units."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from builders import keras_lstm_with_state
from test_main import run

import onnxprune
from onnxprune.cli import closeness
from onnxprune.core.io import save_model
from onnxprune.core.runtime import make_session, random_feeds


def _fidelity_line(stdout: str) -> str:
    return next(ln for ln in stdout.splitlines() if ln.startswith("fidelity: "))


def _stream(model, feeds, pairs, keep=None):
    """Reference loop written out: each call gets the previous call's state outputs."""
    sess = make_session(model)
    names = [o.name for o in sess.get_outputs()]
    state, outs = {}, []
    for feed in feeds:
        if keep is not None:
            feed = {k: v[:, keep] if k in ("h", "c") else v for k, v in feed.items()}
        got = dict(zip(names, sess.run(names, {**feed, **state})))
        state = {i: got[o] for i, o in pairs}
        outs.append(got)
    return outs


def _snr(ref: list, got: list) -> float:
    ref, got = np.stack(ref).astype(np.float64), np.stack(got).astype(np.float64)
    noise = float(np.sum((got - ref) ** 2))
    return math.inf if noise == 0 else 10 * math.log10(float(np.sum((ref - ref.mean(axis=0)) ** 2)) / noise)


def test_keras_lstm_state_is_measured_on_kept_units_and_carried(tmp_path):
    """The tf2onnx-style LSTM with half its units dead: the pruned model is the original function on
    the kept state, streamed over 16 calls; the line says how state was fed and compared."""
    model, out, report = tmp_path / "lstm.onnx", tmp_path / "p.onnx", tmp_path / "r.json"
    save_model(keras_lstm_with_state(), model)
    r = run("prune", model, out, "--ratio", "0.5", "--round-to", "1", "--allow-io-change", "--report", report)
    assert r.returncode == 0, r.stderr
    line = _fidelity_line(r.stdout)
    assert "not measured" not in line
    assert "run as one stream of 16 calls carrying state (h -> h_out, c -> c_out;" in line
    assert "zero initial state" in line and "compared on their kept units: h_out 4 of 8, c_out 4 of 8" in line
    assert line.endswith("=> identical to the original")
    fid = json.loads(report.read_text())["fidelity"]
    assert fid["state"] == {"zero_initial": ["h", "c"], "carried": [["h", "h_out"], ["c", "c_out"]], "steps": 16}
    assert {o["name"]: o["kept_units"] for o in fid["outputs"] if "kept_units" in o} == {"h_out": [4, 8],
                                                                                          "c_out": [4, 8]}
    resized = json.loads(report.read_text())["resized_io"]
    assert {x["name"]: x["kept"] for x in resized} == {n: [1, 3, 5, 7] for n in ("h", "c", "h_out", "c_out")}


def test_live_units_stream_matches_a_loop_written_out():
    """Every unit live: pruning changes the function. The reported per-output SNR must be what a
    streaming caller sees: original with its full state, pruned with its kept state, each fed its
    own previous state, from zero; resized outputs cut to their kept units."""
    original = keras_lstm_with_state(dead=False)
    result = onnxprune.prune(original, ratio=0.5, round_to=1, allow_io_change=True)
    assert result.verify.passed
    keep = result.resized_io[0]["kept"]
    sess = make_session(original)
    feeds = [random_feeds(sess, {}, seed) for seed in range(6)]
    detail = closeness.compare(original, result.model, feeds, "six calls", result.resized_io)
    zero = [dict(f, h=np.zeros_like(f["h"]), c=np.zeros_like(f["c"])) for f in feeds]
    pairs = [("h", "h_out"), ("c", "c_out")]
    ref, got = _stream(original, zero, pairs), _stream(result.model, zero, pairs, keep)
    snr = {o["name"]: o["snr_db"] for o in detail["outputs"]}
    assert snr["out"] == pytest.approx(_snr([x["out"] for x in ref], [x["out"] for x in got]), rel=1e-6)
    assert snr["c_out"] == pytest.approx(_snr([x["c_out"][:, keep] for x in ref], [x["c_out"] for x in got]),
                                         rel=1e-6)
    assert math.isfinite(snr["out"])
    # carrying matters: the same calls each from a zero state measure something else
    fresh = [_stream(original, [f], pairs)[0]["out"] for f in zero]
    assert snr["out"] != pytest.approx(_snr(fresh, [_stream(result.model, [f], pairs, keep)[0]["out"] for f in zero]))


@pytest.mark.realmodel
def test_silero_ifless_state_fidelity_is_measured(real_model, tmp_path):
    """silero-vad's op18 ifless export: state [2, B, 128] -> stateN shrinks to 64 with
    --allow-io-change; fidelity is measured on a 16-call stream carrying each model's own state."""
    path, report = real_model("silero_vad_op18_ifless"), tmp_path / "r.json"
    r = run("prune", path, tmp_path / "p.onnx", "--ratio", "0.5", "--shape", "input:1,512", "--shape", "state:2,1,128",
            "--input", "sr=16000", "--allow-io-change", "--report", report)
    assert r.returncode == 0, r.stderr
    line = _fidelity_line(r.stdout)
    assert "run as one stream of 16 calls carrying state (state -> stateN;" in line, line
    assert "stateN 64 of 128" in line and "output SNR" in line
    fid = json.loads(report.read_text())["fidelity"]
    assert fid["verdict"] != "unmeasured" and fid["state"]["carried"] == [["state", "stateN"]]
    assert all(math.isfinite(o["snr_db"]) for o in fid["outputs"])


def test_auto_with_other_evaluators_refuses_state_that_would_shrink_in_one_line(tmp_path):
    """--depth (like --task/--head/--low-rank/--recover) cannot feed each candidate its own kept
    state yet: a one-line error naming what works, exit 2, nothing written."""
    model, out = tmp_path / "lstm.onnx", tmp_path / "a.onnx"
    save_model(keras_lstm_with_state(dead=False), model)
    r = run("auto", model, out, "--target-macs", "0.6", "--allow-io-change", "--depth")
    assert r.returncode == 2 and not out.exists()
    assert "error: auto --allow-io-change --depth: state input 'h' would shrink" in r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr


def test_auto_feeds_each_candidate_its_kept_state(tmp_path):
    """auto --allow-io-change shrinks the LSTM's state: every candidate is evaluated on its own kept
    units over a stream from zero state (it used to refuse). Half the units dead: the result is
    exact; every unit live: the search's figure for the result is the one prune's comparison (the
    closing line) gives, on the same feeds."""
    model, out = tmp_path / "lstm.onnx", tmp_path / "a.onnx"
    save_model(keras_lstm_with_state(), model)
    r = run("auto", model, out, "--target-macs", "0.6", "--allow-io-change", "--round-to", "1")
    assert r.returncode == 0, r.stdout + r.stderr
    line = _fidelity_line(r.stdout)
    assert "run as one stream of 32 calls carrying state (h -> h_out, c -> c_out;" in line
    assert line.endswith("=> identical to the original")
    assert onnx_input_dims(out)["h"] < 8

    live, report = tmp_path / "live.onnx", tmp_path / "r.json"
    save_model(keras_lstm_with_state(dead=False), live)
    r = run("auto", live, out, "--target-macs", "0.6", "--allow-io-change", "--round-to", "1", "--min-snr", "5",
            "--report", report)
    assert r.returncode == 0, r.stdout + r.stderr
    rep = json.loads(report.read_text())
    assert rep["prune"]["resized_io"] and rep["fidelity"]["state"]["carried"] == [["h", "h_out"], ["c", "c_out"]]
    assert math.isfinite(rep["final_metrics"]["snr_db"]) and rep["final_metrics"]["snr_db"] >= 5
    assert rep["final_metrics"]["snr_db"] == pytest.approx(rep["fidelity"]["snr_db"], rel=1e-9)
    assert rep["final_metrics"]["top1_agreement"] == pytest.approx(rep["fidelity"]["top1_agreement"])


@pytest.mark.realmodel
def test_silero_auto_shrinks_state_with_exact_macs_and_a_streamed_figure(real_model, tmp_path):
    """silero-vad's ifless export under auto --allow-io-change: candidates whose state shrank are
    costed at their own state size (MACs were 0 when shapes came from the original's inputs) and
    judged over a stream of their own kept state; the closing line says so."""
    path, out, report = real_model("silero_vad_op18_ifless"), tmp_path / "a.onnx", tmp_path / "r.json"
    r = run("auto", path, out, "--target-macs", "0.8", "--shape", "input:1,512", "--shape", "state:2,1,128",
            "--allow-io-change", "--latency-model", "macs", "--min-snr", "5", "--report", report)
    assert r.returncode == 0, r.stdout + r.stderr
    rep = json.loads(report.read_text())
    assert rep["trajectory"] and all(e["macs"] > 0.5 for e in rep["trajectory"])
    state = next(x for x in rep["prune"]["resized_io"] if x["name"] == "state")
    assert state["new"] < 128 and rep["fidelity"]["state"]["carried"] == [["state", "stateN"]]
    assert rep["final_metrics"]["snr_db"] == pytest.approx(rep["fidelity"]["snr_db"], rel=1e-9)
    assert "carrying state (state -> stateN;" in _fidelity_line(r.stdout)


def onnx_input_dims(path) -> dict:
    import onnx

    return {i.name: i.type.tensor_type.shape.dim[-1].dim_value for i in onnx.load(str(path)).graph.input}


def test_with_data_the_stream_is_consecutive_examples(tmp_path):
    """With --data, a state-carrying model is measured on the first 64 examples in order (chunks a
    streaming caller feeds one after another), each model carrying its own state from zero; the
    dumps' own h/c are replaced by that. The reported SNR is the one of that loop written out."""
    import onnx

    model, out, report, dumps = tmp_path / "lstm.onnx", tmp_path / "p.onnx", tmp_path / "r.json", tmp_path / "d.npz"
    save_model(keras_lstm_with_state(dead=False), model)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((80, 5, 6)).astype(np.float32)
    np.savez(dumps, x=x, h=rng.standard_normal((80, 8)).astype(np.float32),
             c=rng.standard_normal((80, 8)).astype(np.float32))
    r = run("prune", model, out, "--ratio", "0.5", "--round-to", "1", "--allow-io-change", "--data", dumps,
            "--report", report)
    assert r.returncode == 0, r.stdout + r.stderr
    line = _fidelity_line(r.stdout)
    assert f"vs original on 64 consecutive examples of --data {dumps}" in line
    assert "run as one stream of 64 calls carrying state" in line
    rep = json.loads(report.read_text())
    keep = rep["resized_io"][0]["kept"]
    feeds = [{"x": x[i][None], "h": np.zeros((1, 8), np.float32), "c": np.zeros((1, 8), np.float32)} for i in range(64)]
    pairs = [("h", "h_out"), ("c", "c_out")]
    ref = _stream(onnx.load(str(model)), feeds, pairs)
    got = _stream(onnx.load(str(out)), feeds, pairs, keep)
    snr = {o["name"]: o["snr_db"] for o in rep["fidelity"]["outputs"]}
    assert snr["out"] == pytest.approx(_snr([f["out"] for f in ref], [f["out"] for f in got]), rel=1e-6)
