"""`onnxprune batch` without Ray: a folder or manifest, one row per model, a bad model is its own
row, progress one line per model when not on a terminal."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx
from click.testing import CliRunner

from onnxprune.bench.batch import BatchConfig, read_items, run_batch
from onnxprune.cli import main

FIXTURE = Path(__file__).resolve().parents[2] / "onnxprune" / "assets" / "kws_dscnn.onnx"


def test_folder_batch_prunes_verifies_and_keeps_going(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(FIXTURE, folder / "a_kws.onnx")
    (folder / "b_empty.onnx").write_bytes(b"")
    out, js = tmp_path / "out", tmp_path / "batch.json"
    run = CliRunner().invoke(main, ["batch", str(folder), "--runs", "5", "--warmup", "1",
                                                    "--out", str(out), "--json", str(js)])
    assert run.exit_code == 0, run.output + run.stderr
    assert "batch [1/2] a_kws: ok" in run.stderr and "batch [2/2] b_empty: ok" in run.stderr  # one line per model
    rows = json.loads(js.read_text())["models"]
    assert [r["status"] for r in rows] == ["verified", "declined"]
    assert "empty" in rows[1]["reason"]
    assert rows[0]["verify"]["passed"] and rows[0]["params_after"] < rows[0]["params"]
    assert rows[0]["bench"]["speedup"] > 0 and rows[0]["bench"]["fidelity"] is not None
    pruned = onnx.load(str(out / "a_kws.onnx"))
    assert sum(t.ByteSize() for t in pruned.graph.initializer) < sum(t.ByteSize() for t in onnx.load(str(FIXTURE)).graph.initializer)
    assert not (out / "b_empty.onnx").exists()
    assert "a_kws" in run.output and "verified" in run.output  # the table


def test_manifest_shapes_inputs_and_names(tmp_path):
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps([{"path": str(FIXTURE), "name": "kws", "shape": ["logmel:1,1,49,40"]},
                                    {"path": "missing.onnx"}]))
    items = read_items(str(manifest))
    assert [i.name for i in items] == ["kws", "missing"] and items[0].shapes == {"logmel": [1, 1, 49, 40]}
    result = run_batch(items, BatchConfig(bench=False))
    assert [r["status"] for r in result["models"]] == ["verified", "declined"]
    assert result["counts"] == {"verified": 1, "declined": 1}


def test_bad_sources_are_one_line(tmp_path):
    (tmp_path / "m.jsonl").write_text('{"nopath": 1}\n')
    for source, message in ((tmp_path / "nothing", "no such folder or manifest"),
                            (tmp_path / "m.jsonl", 'every manifest entry needs a "path"')):
        run = CliRunner().invoke(main, ["batch", str(source)])
        assert run.exit_code != 0 and message in run.stderr and "Traceback" not in run.stderr
