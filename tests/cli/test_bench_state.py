"""bench and sweep measure fidelity of a model whose state --allow-io-change resized as prune does
(prune.resized): zero initial state, the original its full state and the pruned model its kept
units, carried call to call; a resized output compared on its kept units. They used to feed each
model seeded inputs of its own shapes, comparing different state values."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from builders import keras_lstm_with_state
from test_main import run

from onnxprune.bench.metrics import fidelity
from onnxprune.core.io import save_model
from onnxprune.core.runtime import make_session, random_feeds

QUICK = ("--runs", "2", "--warmup", "0", "--no-memory")


def _pruned(tmp_path, dead=True):
    model, out, report = tmp_path / "lstm.onnx", tmp_path / "p.onnx", tmp_path / "r.json"
    save_model(keras_lstm_with_state(dead=dead), model)
    r = run("prune", model, out, "--ratio", "0.5", "--round-to", "1", "--allow-io-change", "--report", report)
    assert r.returncode == 0, r.stdout + r.stderr
    return model, out, report


def test_sweep_compares_kept_state_exact_prune_is_perfect(tmp_path):
    """Half the LSTM's units are dead, so the pruned model is the original on the kept state: its
    sweep fidelity is perfect (it printed 0.68 when each model got seeded state of its own size), and
    a --shape for the state applies to each model at its own size (it stopped the sweep)."""
    model = tmp_path / "lstm.onnx"
    save_model(keras_lstm_with_state(), model)
    r = run("sweep", model, "--ratios", "0,0.5", "--round-to", "1", "--allow-io-change", *QUICK,
            "--shape", "h:1,8", "--out", tmp_path / "sw")  # --shape names the original's size: each model its own
    assert r.returncode == 0, r.stdout + r.stderr
    sweep = json.loads((tmp_path / "sw" / "sweep.json").read_text())
    point = next(p for p in sweep["points"] if p["ratio"] == 0.5)
    assert point["resized_io"] and point["quality"] == 1.0
    fid = next(m for m in sweep["bench"]["models"] if m["name"] == "r=0.5")["fidelity"]
    assert fid["snr_db"] == "inf" and fid["cosine"] == pytest.approx(1.0)
    assert sweep["bench"]["state"]["carried"] == [["h", "h_out"], ["c", "c_out"]]
    assert "state: c, h fed zeros" in (tmp_path / "sw" / "sweep.md").read_text()


def test_bench_without_report_refuses_a_figure_for_other_input_shapes(tmp_path):
    model, out, _ = _pruned(tmp_path)
    r = run("bench", model, out, *QUICK, "--json", tmp_path / "b.json")
    assert r.returncode == 0, r.stdout + r.stderr
    fid = json.loads((tmp_path / "b.json").read_text())["models"][1]["fidelity"]
    assert fid == {"error": "not measured: inputs differ from lstm.onnx's (c [1, 8] vs [1, 4], h [1, 8] vs [1, 4]), "
                            "kept units unknown; give its prune --report"}
    assert "top1_agreement" not in fid


def test_bench_with_report_matches_a_stream_written_out(tmp_path):
    """Every unit live: bench --report's figures are metrics.fidelity of the loop a streaming caller
    runs: 8 seeded calls, state from zero, each model fed its own previous state."""
    model, out, report = _pruned(tmp_path, dead=False)
    r = run("bench", model, out, *QUICK, "--report", report, "--json", tmp_path / "b.json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "run as one stream of 8 calls carrying state (h -> h_out, c -> c_out; each model its own)" in r.stdout
    got = json.loads((tmp_path / "b.json").read_text())["models"][1]["fidelity"]
    keep = json.loads(report.read_text())["resized_io"][0]["kept"]

    def loop(path, cut):
        sess = make_session(onnx.load(str(path)))
        state, outs = {}, []
        for i in range(8):
            feed = random_feeds(make_session(onnx.load(str(model))), {}, i)
            feed = {k: np.zeros_like(v[:, keep] if cut and k in ("h", "c") else v) if k in ("h", "c") else v
                    for k, v in feed.items()}
            y, h, c = sess.run(["out", "h_out", "c_out"], {**feed, **state})
            state = {"h": h, "c": c}
            outs.append(y)
        return outs

    want = fidelity(loop(model, False), loop(out, True))
    assert want["snr_db"] < 60  # pruning live units changed the function: a figure that can differ
    for k in ("top1_agreement", "cosine", "snr_db", "kl"):
        assert got[k] == pytest.approx(want[k], rel=1e-5), k


def test_bench_report_that_fits_no_model_is_one_line(tmp_path):
    model, _, report = _pruned(tmp_path)
    r = run("bench", model, model, *QUICK, "--report", report)
    assert r.returncode == 2
    assert "no model here has its resized inputs/outputs at the sizes it gives (h 8 -> 4" in r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
