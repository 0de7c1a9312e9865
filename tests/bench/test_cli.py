"""`onnxprune bench` and `onnxprune sweep` as a user meets them, on the bundled KWS model."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest

from onnxprune.bench import memory
from onnxprune.bench.providers import check_session_provider, resolve_provider
from builders import bundled_model
from onnxprune.errors import UsageError

CLI = [sys.executable, "-m", "onnxprune"]
FAST = ["--warmup", "1", "--runs", "5"]


def run(*args):
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def kws_pair(tmp_path_factory):
    d = tmp_path_factory.mktemp("kws")
    original = d / "kws.onnx"
    original.write_bytes(bundled_model().read_bytes())
    pruned = d / "kws_r0p75.onnx"
    r = run("prune", original, pruned, "--ratio", "0.75")
    assert r.returncode == 0, r.stderr
    return original, pruned


@pytest.fixture(scope="module")
def kws_data(kws_pair):
    """Seeded inputs labelled with the original model's own predictions (so its accuracy is 1)."""
    original, _ = kws_pair
    sess = ort.InferenceSession(str(original))
    x = np.random.default_rng(3).standard_normal((12, 1, 1, 49, 40)).astype(np.float32)
    labels = np.array([int(sess.run(None, {"logmel": xi})[0].argmax()) for xi in x])
    path = original.parent / "data.npz"
    np.savez(path, logmel=x[:, 0], label=labels)
    return path


def test_unavailable_provider_is_one_line_naming_it(kws_pair, tmp_path):
    original, _ = kws_pair
    out = tmp_path / "r.json"
    r = run("bench", original, "--provider", "cuda", "--json", out)
    assert r.returncode == 2
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "CUDAExecutionProvider" in errors[0] and "onnxruntime-gpu" in errors[0]
    assert "Traceback" not in r.stderr and not out.exists()


def test_resolve_provider_names():
    assert resolve_provider("cpu") == resolve_provider("CPUExecutionProvider") == "CPUExecutionProvider"
    with pytest.raises(UsageError, match="unknown execution provider"):
        resolve_provider("gpu9000")


def test_silent_fallback_is_an_error():
    class FellBack:
        def get_providers(self):
            return ["CPUExecutionProvider"]

    with pytest.raises(UsageError, match="instead of CUDAExecutionProvider"):
        check_session_provider(FellBack(), "CUDAExecutionProvider", "m.onnx")


def test_bench_two_models_json_and_markdown(kws_pair, tmp_path):
    original, pruned = kws_pair
    js, md = tmp_path / "b.json", tmp_path / "b.md"
    r = run("bench", original, pruned, *FAST, "--threads", "1", "--json", js, "--markdown", md, "--no-memory")
    assert r.returncode == 0, r.stderr
    data = json.loads(js.read_text())
    first, second = data["models"]
    assert first["speedup"] == 1.0 and second["speedup"] > 0
    assert first["latency"]["runs"] == second["latency"]["runs"] == 5
    for key in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms", "throughput_per_s"):
        assert first["latency"][key] > 0
    assert second["macs"] < first["macs"] and second["params"] < first["params"]
    assert second["macs_ratio"] == pytest.approx(second["macs"] / first["macs"])
    assert set(second["fidelity"]) >= {"top1_agreement", "cosine", "snr_db", "kl"}
    assert "fidelity" not in first
    assert data["machine"]["provider"] == "CPUExecutionProvider" and data["machine"]["threads"] == 1
    text = md.read_text()
    assert "| kws.onnx |" in text and "| kws_r0p75.onnx |" in text and "Command: `onnxprune bench" in text


def test_bench_classify_task_on_npz_data(kws_pair, kws_data, tmp_path):
    original, pruned = kws_pair
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"word{k}" for k in range(12)) + "\n")
    js = tmp_path / "b.json"
    r = run("bench", original, pruned, *FAST, "--data", kws_data, "--task", "classify", "--labels", labels,
            "--json", js, "--no-memory")
    assert r.returncode == 0, r.stderr
    first, second = json.loads(js.read_text())["models"]
    assert first["task"]["accuracy"] == 1.0 and first["task"]["examples"] == 12
    assert set(first["task"]["recall"]) == {f"word{k}" for k in range(12)}
    assert 0.0 <= second["task"]["accuracy"] <= 1.0
    # fidelity on the same 12 examples: top-1 agreement equals the pruned model's accuracy here
    assert second["fidelity"]["top1_agreement"] == pytest.approx(second["task"]["accuracy"])
    assert "accuracy" in r.stdout


def test_task_without_data_is_a_usage_error(kws_pair):
    r = run("bench", kws_pair[0], "--task", "classify")
    assert r.returncode == 2 and "needs --data" in r.stderr


def test_peak_memory_subprocess(kws_pair):
    m = memory.measure(str(kws_pair[0]), provider="CPUExecutionProvider", shapes={"logmel": [1, 1, 49, 40]})
    assert "error" not in m, m
    assert m["peak_rss_mb"] > m["session_mb"] > 0


def test_sweep_writes_json_markdown_png(kws_pair, tmp_path):
    original, _ = kws_pair
    out = tmp_path / "sweep"
    r = run("sweep", original, "--ratios", "0,0.5,0.75", *FAST, "--no-memory", "--fidelity-inputs", "4",
            "--out", out)
    assert r.returncode == 0, r.stderr
    data = json.loads((out / "sweep.json").read_text())
    assert [p["ratio"] for p in data["points"]] == [0.0, 0.5, 0.75]
    assert data["quality_metric"].startswith("fidelity top1")
    assert data["points"][0]["quality"] == 1.0
    assert data["points"][2]["macs"] < data["points"][1]["macs"] < data["points"][0]["macs"]
    assert any(p["pareto_macs"] for p in data["points"])
    assert (out / "kws_r0p5.onnx").exists() and (out / "kws_r0p75.onnx").exists()
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| 0.75 |" in (out / "sweep.md").read_text()


def test_sweep_bad_ratios_exit_2(kws_pair, tmp_path):
    r = run("sweep", kws_pair[0], "--ratios", "0.5,1.5", "--out", tmp_path / "s")
    assert r.returncode == 2 and "--ratios" in r.stderr and not (tmp_path / "s").exists()


def test_sweep_error_leaves_no_output_dir(kws_pair, tmp_path):
    out = tmp_path / "s"
    r = run("sweep", kws_pair[0], "--ratios", "0.5", "--shape", "nosuch:1,2", "--out", out)
    assert r.returncode == 2 and "nosuch" in r.stderr and not out.exists()


def test_bench_holdout_evaluates_only_the_held_out_rows(kws_pair, kws_data, tmp_path):
    js = tmp_path / "b.json"
    r = run("bench", *kws_pair, *FAST, "--data", kws_data, "--holdout", "0.25", "--json", js, "--no-memory")
    assert r.returncode == 0, r.stderr
    assert json.loads(js.read_text())["models"][1]["fidelity"]["examples"] == 3  # 25 % of 12 rows


def test_sweep_data_aware_criterion_calibrates_apart_from_evaluation(kws_pair, kws_data, tmp_path):
    """--criterion reconstruction --compensate lstsq: calibrated on the non-held-out rows, benched on
    the held-out ones; without --holdout a note says both use the same rows."""
    original, _ = kws_pair
    out = tmp_path / "sweep"
    r = run("sweep", original, "--ratios", "0,0.5", *FAST, "--no-memory", "--data", kws_data, "--holdout", "0.25",
            "--criterion", "reconstruction", "--compensate", "lstsq", "--out", out)
    assert r.returncode == 0, r.stderr
    assert "same files" not in r.stdout
    data = json.loads((out / "sweep.json").read_text())
    assert [p["ratio"] for p in data["points"]] == [0.0, 0.5] and not data["failed"]
    assert (out / "kws_r0p5.onnx").exists()
    r = run("sweep", original, "--ratios", "0.5", *FAST, "--no-memory", "--data", kws_data,
            "--criterion", "activation", "--out", tmp_path / "s2")
    assert r.returncode == 0, r.stderr
    assert "calibrating and evaluating on the same files" in r.stdout
    r = run("sweep", original, "--ratios", "0.5", *FAST, "--no-memory", "--criterion", "activation",
            "--out", tmp_path / "s3")
    assert r.returncode == 2 and "needs calibration data" in r.stderr
