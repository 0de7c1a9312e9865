"""Ray runs give the local run's results: same sweep files (bytes), same auto plan, trajectory and
sensitivity table, same batch rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from onnxprune.api import PruneConfig
from onnxprune.search.auto import AutoConfig, auto_prune
from onnxprune.bench.batch import BatchConfig, read_items, run_batch
from onnxprune.bench.evaluate import BenchConfig
from onnxprune.bench.sweep import run_sweep

from ray_helpers import FIXTURE

BENCH = BenchConfig(threads=1, runs=5, warmup=1, memory=False, fidelity_inputs=4)


def _sweep(tmp_path, name, executor=None):
    result = run_sweep(FIXTURE, [0.0, 0.25, 0.5], PruneConfig(), BENCH, str(tmp_path / name), executor=executor)
    files = {p["ratio"]: Path(p["path"]).read_bytes() for p in result["points"]}
    return result, files


def test_sweep_on_ray_writes_the_local_files(tmp_path, executor):
    local, local_files = _sweep(tmp_path, "local")
    ray, ray_files = _sweep(tmp_path, "ray", executor)
    assert local_files == ray_files and len(ray_files) == 3
    assert [p.get("max_abs_diff_vs_reference") for p in ray["points"]] == \
        [p.get("max_abs_diff_vs_reference") for p in local["points"]]
    assert ray["failed"] == local["failed"] == []
    assert len(executor.progress.outcomes) == 2  # the two ratios > 0 ran as tasks
    assert all(o.ok and o.where["node"] != "local" for o in executor.progress.outcomes)


def _auto(executor=None):
    # an SNR budget that accepts some steps and rejects others on seeded random inputs, so the
    # evaluations made ahead are both used and dropped
    return auto_prune(FIXTURE, AutoConfig(goal="macs", target=0.3, max_drop=None, min_snr=-14.0, latency="macs"),
                      executor=executor)


def test_auto_on_ray_finds_the_local_plan(executor):
    local, ray = _auto(), _auto(executor)
    assert ray.plan.to_json() == local.plan.to_json()
    a, b = local.report(), ray.report()
    assert b["trajectory"] == a["trajectory"]
    assert any(not e["accepted"] for e in a["trajectory"]) and any(e["accepted"] for e in a["trajectory"])
    assert b["sensitivity"]["groups"] == a["sensitivity"]["groups"]
    assert b["sensitivity"]["forward_passes"] == a["sensitivity"]["forward_passes"]
    assert b["evaluations"] == a["evaluations"]
    assert b["evaluated_ahead"]["evaluated"] >= b["evaluations"] - 1  # candidates really ran as tasks
    assert ray.result.model.SerializeToString() == local.result.model.SerializeToString()


def test_batch_on_ray_gives_the_local_rows(tmp_path, executor):
    (tmp_path / "broken.onnx").write_bytes(b"not a model")
    manifest = tmp_path / "models.jsonl"
    manifest.write_text(json.dumps({"path": FIXTURE, "name": "kws"}) + "\n" + json.dumps({"path": "broken.onnx"}) + "\n")
    items = read_items(str(manifest))
    cfg = BatchConfig(ratio=0.5, runs=5, warmup=1)
    local = run_batch(items, cfg)
    ray = run_batch(items, cfg, executor=executor, out_dir=str(tmp_path / "out"))
    keys = ("name", "status", "reason", "groups", "prunable", "params", "params_after", "macs_after", "verify")
    assert [{k: r.get(k) for k in keys} for r in ray["models"]] == [{k: r.get(k) for k in keys} for r in local["models"]]
    assert [r["status"] for r in ray["models"]] == ["verified", "declined"]  # one bad model, the other kept
    assert "not a valid ONNX protobuf" in ray["models"][1]["reason"]
    assert (tmp_path / "out" / "kws.onnx").exists()
    assert {o.where["pid"] for o in executor.progress.outcomes} - {None}
