"""Hostile inputs through the real CLI (a subprocess, as a user runs it).

Every failure must be: exit 1 or 2, exactly one `error:` line naming the problem, no traceback,
no output file and no temporary file left in the output folder, the input byte-identical, and no
hang (each run has a timeout). Inputs that are odd but valid must prune and verify.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import hostile

CLI = [sys.executable, "-m", "onnxprune"]


def cli(*args, timeout=120):
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, timeout=timeout)


def digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def assert_clean_failure(res, code, words, folder, before: dict):
    assert res.returncode == code, res.stdout + res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, res.stderr
    assert "Traceback" not in res.stderr + res.stdout and "internal error" not in errors[0], res.stderr
    for word in words:
        assert word in errors[0], errors[0]
    assert {p.name: digest(p) for p in Path(folder).iterdir() if p.is_file()} == before, "folder changed"
    assert not [p for p in Path(folder).iterdir() if p.name.startswith(".onnxprune")], "temporary files left"


FAILURES = [  # builder, exit code, words the error line must contain
    ("empty", 1, ["file is empty"]),
    ("truncated", 1, ["not a valid ONNX protobuf"]),
    ("random_bytes", 1, ["not a valid ONNX protobuf"]),
    ("bit_flipped", 1, ["not a valid ONNX protobuf"]),
    ("missing_external_data", 1, ["external data file", "m.onnx.data", "missing"]),
    ("short_external_data", 1, ["external data file", "m.onnx.data", "too short"]),
    ("external_data_outside_folder", 1, ["../secret.bin", "outside the model's folder"]),
    ("ir_too_new", 1, ["IR version 99"]),
    ("opset_too_old", 1, ["opset 5", "older than onnxruntime runs"]),
    ("custom_domain_op", 1, ["com.example:MysteryRelu"]),
    ("dangling_input", 1, ["nowhere"]),
    ("symbolic_dims", 2, ["symbolic input dims", "--shape"]),
]


@pytest.mark.parametrize("builder,code,words", FAILURES, ids=[f[0] for f in FAILURES])
def test_hostile_model_fails_cleanly(builder, code, words, tmp_path):
    model, extra = getattr(hostile, builder)(tmp_path)
    before = {p.name: digest(p) for p in tmp_path.iterdir() if p.is_file()}
    assert_clean_failure(cli("inspect", model, *extra), code, words, tmp_path, before)
    assert_clean_failure(cli("prune", model, tmp_path / "out.onnx", "--ratio", "0.3", *extra),
                         code, words, tmp_path, before)


def test_duplicate_node_names_inspect_works_prune_refuses(tmp_path):
    """The analysis does not need node names; onnxruntime refuses the original, so nothing can be
    verified and nothing is written."""
    model, _ = hostile.duplicate_node_names(tmp_path)
    before = {p.name: digest(p) for p in tmp_path.iterdir()}
    assert cli("inspect", model).returncode == 0
    res = cli("prune", model, tmp_path / "out.onnx", "--ratio", "0.3", "--round-to", "1")
    assert_clean_failure(res, 1, ["two nodes with same node name"], tmp_path, before)


VALID_ODDITIES = ["initializer_as_input", "shared_initializer_model", "output_without_shape",
                  "ir_newer_than_runtime"]


@pytest.mark.parametrize("builder", VALID_ODDITIES)
def test_odd_but_valid_model_prunes_and_verifies(builder, tmp_path):
    model, extra = getattr(hostile, builder)(tmp_path)
    before = digest(model)
    out = tmp_path / "out.onnx"
    res = cli("prune", model, out, "--ratio", "0.3", "--round-to", "1", "--report", tmp_path / "r.json", *extra)
    assert res.returncode == 0, res.stderr
    assert "verify: passed" in res.stdout
    assert out.exists() and digest(model) == before
    import json

    report = json.loads((tmp_path / "r.json").read_text())
    assert report["params_after"] < report["params_before"], "nothing was pruned"


@pytest.mark.parametrize("criterion", ["l1", "random"])
def test_shared_initializer_prunes_per_reader_and_verifies(criterion):
    """One weight read by two prunable groups: each reader's weight keeps exactly its group's
    channels (shared while the kept sets agree, split when they differ), and the result verifies."""
    from onnxprune.api import prune

    result = prune(hostile.shared_initializer(), ratio=0.5, round_to=1, criterion=criterion, seed=3)
    assert result.verify.passed, result.verify.message
    assert result.after["params"] < result.before["params"]
    dims = {i.name: list(i.dims) for i in result.model.graph.initializer}
    node = {n.name: n for n in result.model.graph.node}
    for branch in "ab":
        assert dims[node[f"conv_{branch}"].input[1]][0] == dims[node[f"proj_{branch}"].input[1]][1] == 3


@pytest.mark.parametrize("ratio", ["1.0", "-0.1", "1.5"])
def test_ratio_out_of_range(ratio, tmp_path):
    model = hostile.save(hostile.small_cnn(), tmp_path / "m.onnx")
    before = {"m.onnx": digest(model)}
    assert_clean_failure(cli("prune", model, tmp_path / "out.onnx", "--ratio", ratio), 2,
                         ["--ratio", "out of range"], tmp_path, before)


def test_output_equal_to_input(tmp_path):
    model = hostile.save(hostile.small_cnn(), tmp_path / "m.onnx")
    before = {"m.onnx": digest(model)}
    assert_clean_failure(cli("prune", model, model, "--ratio", "0.3"), 2, ["is the input file"], tmp_path, before)
    # the same file through another spelling of its path
    other = f"{tmp_path}/./m.onnx"
    assert_clean_failure(cli("prune", model, other, "--ratio", "0.3"), 2, ["is the input file"], tmp_path, before)


def test_output_under_a_regular_file(tmp_path):
    """A 'directory' that is a file: unwritable even for root."""
    model = hostile.save(hostile.small_cnn(), tmp_path / "m.onnx")
    (tmp_path / "afile").write_text("x")
    before = {"m.onnx": digest(model), "afile": digest(tmp_path / "afile")}
    assert_clean_failure(cli("prune", model, tmp_path / "afile" / "out.onnx", "--ratio", "0.3"), 2,
                         ["afile"], tmp_path, before)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits")
def test_output_directory_without_write_permission(tmp_path):
    model = hostile.save(hostile.small_cnn(), tmp_path / "m.onnx")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        res = cli("prune", model, locked / "out.onnx", "--ratio", "0.3")
        assert res.returncode == 2 and "not writable" in res.stderr
        assert not list(locked.iterdir())
    finally:
        locked.chmod(0o700)


def test_output_on_read_only_filesystem(tmp_path):
    """/proc is read-only for everyone, root included."""
    model = hostile.save(hostile.small_cnn(), tmp_path / "m.onnx")
    before = {"m.onnx": digest(model)}
    res = cli("prune", model, "/proc/onnxprune-out.onnx", "--ratio", "0.3")
    assert_clean_failure(res, 2, ["/proc"], tmp_path, before)
