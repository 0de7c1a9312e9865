"""`bench --profile`: time per op type from onnxruntime's profiler, every model against the first."""

from __future__ import annotations

import json
import subprocess
import sys

from builders import bundled_model

import onnxprune
from onnxprune.bench.profile import op_type_profiles, profile_table
from onnxprune.core.runtime import make_session, random_feeds

CLI = [sys.executable, "-m", "onnxprune"]


def test_profiles_name_the_models_op_types_and_compare_them(tmp_path):
    original = bundled_model()
    pruned = tmp_path / "pruned.onnx"
    onnxprune.prune(original, ratio=0.5).save(pruned)
    feeds = [random_feeds(make_session(str(p)), {}, 0) for p in (original, pruned)]
    found = op_type_profiles([str(original), str(pruned)], feeds, runs=3)
    assert {"Conv", "Gemm"} <= set(found[0]["ops_us"]) and all(v >= 0 for v in found[0]["ops_us"].values())
    headers, rows = profile_table(["a", "b"], found)
    assert headers == ["op type", "a µs", "b µs", "× first"]
    assert rows[0][0] == max(found[0]["ops_us"], key=found[0]["ops_us"].get) and rows[-1][0] == "all kernels"


def test_bench_profile_prints_the_table_and_writes_it(tmp_path):
    original = bundled_model()
    out = tmp_path / "b.json"
    r = subprocess.run(CLI + ["bench", str(original), str(original), "--runs", "3", "--warmup", "1", "--no-memory",
                              "--threads", "1", "--profile", "--json", str(out)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert "time per op type" in r.stdout and "all kernels" in r.stdout
    assert "Conv" in json.loads(out.read_text())["profile"]["models"]["kws_dscnn.onnx"]["ops_us"]
