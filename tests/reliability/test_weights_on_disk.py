"""Models with external data: big weights stay on disk through load, prune, verify and save.

Small models (a few MB) exercise the same path as multi-GB ones: tensors of at least 1 MiB are
mapped, never copied into the model; the output is bit-identical to pruning the model in memory.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxprune import api
from onnxprune.core import external as weights
from onnxprune.errors import ModelError, UsageError
from onnxprune.core.io import load_model, save_model

import large
from test_hostile import assert_clean_failure


def mlp(hidden=1024, inputs=512, seed=0) -> onnx.ModelProto:
    """x[1, inputs] -> Gemm -> Relu -> MatMul -> Add -> Relu -> Gemm(8), then a Reshape whose shape
    constant is an initializer (saved externally too: it must be read back in for inference)."""
    rng = np.random.default_rng(seed)
    t = lambda a, n: numpy_helper.from_array(a.astype(np.float32), n)  # noqa: E731
    inits = [t(rng.standard_normal((hidden, inputs)) / np.sqrt(inputs), "W0"), t(rng.standard_normal(hidden), "B0"),
             t(rng.standard_normal((hidden, hidden)) / np.sqrt(hidden), "W1"), t(rng.standard_normal(hidden), "B1"),
             t(rng.standard_normal((8, hidden)), "W2"), numpy_helper.from_array(np.array([2, 4], np.int64), "shape")]
    nodes = [helper.make_node("Gemm", ["x", "W0", "B0"], ["g0"], name="gemm0", transB=1),
             helper.make_node("Relu", ["g0"], ["r0"], name="relu0"),
             helper.make_node("MatMul", ["r0", "W1"], ["m1"], name="matmul1"),
             helper.make_node("Add", ["m1", "B1"], ["a1"], name="add1"),
             helper.make_node("Relu", ["a1"], ["r1"], name="relu1"),
             helper.make_node("Gemm", ["r1", "W2"], ["g2"], name="gemm2", transB=1),
             helper.make_node("Reshape", ["g2", "shape"], ["y"], name="reshape")]
    vi = helper.make_tensor_value_info
    graph = helper.make_graph(nodes, "mlp", [vi("x", TensorProto.FLOAT, [1, inputs])],
                              [vi("y", TensorProto.FLOAT, [2, 4])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


def save_external(model, path: Path, location=None) -> Path:
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=location or path.name + ".data", size_threshold=0)
    return path


def cli(*args):
    return subprocess.run([sys.executable, "-m", "onnxprune", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def values(model) -> dict:
    return {t.name: np.asarray(weights.read(t)) for t in model.graph.initializer}


def test_load_leaves_big_weights_on_disk_and_reads_small_ones(tmp_path):
    path = save_external(mlp(), tmp_path / "m.onnx")
    model = load_model(path)
    external = {t.name for t in model.graph.initializer if weights.is_external(t)}
    assert external == {"W0", "W1"}  # 2 MB and 4 MB; biases, W2 and the shape constant are read in
    assert all(Path(weights.source(t)[0]).is_absolute() for t in model.graph.initializer if t.name in external)
    assert model.ByteSize() < 64 << 10
    full = onnx.load(str(path))
    for name, value in values(model).items():
        assert np.array_equal(value, numpy_helper.to_array(next(t for t in full.graph.initializer if t.name == name)))


def test_prune_on_disk_equals_prune_in_memory(tmp_path):
    path = save_external(mlp(), tmp_path / "m.onnx")
    before = digest(tmp_path / "m.onnx.data")
    out = tmp_path / "out" / "p.onnx"
    out.parent.mkdir()
    res = cli("prune", path, out, "--ratio", "0.3")
    assert res.returncode == 0, res.stderr
    assert "verify: passed" in res.stdout and "checker passed" in res.stdout
    assert "weights in p.onnx.data" in res.stdout
    assert digest(tmp_path / "m.onnx.data") == before
    written = onnx.load(str(out), load_external_data=False)
    offsets = [weights.source(t)[1] for t in written.graph.initializer if weights.is_external(t)]
    assert offsets and all(o % weights.ALIGN == 0 for o in offsets)
    in_memory = api.prune(mlp(), ratio=0.3).model
    got = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(out)).graph.initializer}
    want = {t.name: numpy_helper.to_array(t) for t in in_memory.graph.initializer}
    assert got.keys() == want.keys()
    assert all(np.array_equal(got[k], want[k]) for k in want)
    assert got["W0"].shape[0] < 1024


def test_ratio_zero_keeps_every_weight(tmp_path):
    path = save_external(mlp(), tmp_path / "m.onnx")
    out = tmp_path / "p.onnx"
    res = cli("prune", path, out, "--ratio", "0")
    assert res.returncode == 0, res.stderr
    got = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(out)).graph.initializer}
    want = {t.name: numpy_helper.to_array(t) for t in mlp().graph.initializer}
    assert got.keys() == want.keys() and all(np.array_equal(got[k], want[k]) for k in want)


def test_data_aware_prune_with_compensation_on_disk(tmp_path):
    path = save_external(mlp(), tmp_path / "m.onnx")
    data = tmp_path / "calib.npy"
    np.save(data, np.random.default_rng(1).standard_normal((16, 512)).astype(np.float32))
    out = tmp_path / "p.onnx"
    res = cli("prune", path, out, "--ratio", "0.3", "--criterion", "reconstruction", "--compensate", "lstsq",
              "--data", data)
    assert res.returncode == 0, res.stderr + res.stdout
    assert "verify: passed" in res.stdout
    assert (tmp_path / "p.onnx.data").exists()


def test_output_that_would_overwrite_the_inputs_weights(tmp_path):
    path = save_external(mlp(), tmp_path / "m.onnx", location="p.onnx.data")
    folder = {p.name: digest(p) for p in tmp_path.iterdir()}
    res = cli("prune", path, tmp_path / "p.onnx", "--ratio", "0.3")
    assert_clean_failure(res, 2, ["p.onnx.data", "holds the input's weights"], tmp_path, folder)


def test_external_data_length_that_does_not_match_dims(tmp_path):
    path = save_external(mlp(), tmp_path / "m.onnx")
    model = onnx.load(str(path), load_external_data=False)
    w0 = next(t for t in model.graph.initializer if t.name == "W0")
    next(e for e in w0.external_data if e.key == "length").value = "4096"
    onnx.save_model(model, str(path))
    with pytest.raises(ModelError, match="4096 bytes of external data but dims"):
        load_model(path)


def test_read_maps_plain_dtypes_and_decodes_others(tmp_path):
    rng = np.random.default_rng(0)
    for dtype, array in ((TensorProto.FLOAT16, rng.standard_normal((700, 800)).astype(np.float16)),
                         (TensorProto.BFLOAT16, rng.standard_normal((700, 800)).astype(np.float32))):
        if dtype == TensorProto.BFLOAT16:  # the top 16 bits of each float32
            raw = (array.view(np.uint32) >> 16).astype(np.uint16).tobytes()
            tensor = helper.make_tensor("w", dtype, array.shape, raw, raw=True)
        else:
            tensor = numpy_helper.from_array(array, "w")
        inline = numpy_helper.to_array(tensor)
        model = helper.make_model(helper.make_graph([helper.make_node("Identity", ["w"], ["y"])], "g", [],
                                                    [helper.make_tensor_value_info("y", dtype, None)], [tensor]))
        save_external(model, tmp_path / "d.onnx")
        loaded = load_model(tmp_path / "d.onnx")
        assert weights.is_external(loaded.graph.initializer[0])
        got = weights.read(loaded.graph.initializer[0])
        assert got.dtype == inline.dtype and np.array_equal(got.view(np.uint16), inline.view(np.uint16))


def test_spilled_weight_is_referenced_not_rewritten():
    array = np.arange(300_000, dtype=np.float32)
    spilled = weights.spill(array)
    tensor = weights.make_tensor(spilled, "w", on_disk=True)
    assert weights.source(tensor)[0] == spilled._onnxprune_spilled
    assert np.array_equal(weights.read(tensor), array)
    with pytest.raises(ValueError):
        spilled[0] = 1  # read-only: nothing can write through a map into a weight
    small = weights.make_tensor(np.ones(4, np.float32), "b", on_disk=True)
    assert not weights.is_external(small)


def test_save_refuses_to_overwrite_a_data_file_in_use(tmp_path):
    path = save_external(mlp(), tmp_path / "m.onnx")
    model = load_model(path)
    with pytest.raises(UsageError, match="holds the input's weights"):
        save_model(model, tmp_path / "m.onnx")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_prune_memory_is_bounded_by_weights_not_copies(tmp_path):
    """134 MB of weights: before weights stayed on disk, prune peaked at ~8x the weights (every copy
    of the model held them); now the model is mapped, scores and rewrites go one weight (or block)
    at a time, and one onnxruntime session maps the weights at a time."""
    path = large.build(tmp_path / "in", hidden=4096)
    size_mb = (tmp_path / "in" / "large.onnx.data").stat().st_size / 2**20
    res, baseline = large.run_measured("inspect", path)
    assert res.returncode == 0, res.stderr
    out = tmp_path / "p.onnx"
    res, peak = large.run_measured("prune", path, out, "--ratio", "0.3")
    assert res.returncode == 0, res.stderr
    assert "verify: passed" in res.stdout
    print(f"weights {size_mb:.0f} MB: inspect peak {baseline:.0f} MB, prune peak {peak:.0f} MB")
    assert baseline - 100 < size_mb * 0.5  # inspect reads no weight whole
    assert peak - baseline < 1.5 * size_mb


def test_search_leaves_no_spill_files_behind(tmp_path):
    """auto builds and drops many candidates: their spilled weights go with them."""
    from onnxprune.search.auto import AutoConfig, auto_prune

    path = save_external(mlp(), tmp_path / "m.onnx")
    folder = Path(weights._spill_folder())
    before = set(folder.iterdir())
    done = auto_prune(str(path), AutoConfig(goal="macs", target=0.5, max_drop=None))
    assert done.result.verify.passed
    assert done.search.evals + len(done.search.trajectory) > 2
    left = set(folder.iterdir()) - before
    referenced = {Path(weights.source(t)[0]) for t in done.result.model.graph.initializer if weights.is_external(t)}
    referenced |= {Path(weights.source(t)[0]) for t in done.result.reference.graph.initializer
                   if weights.is_external(t)}
    assert left <= referenced, f"{len(left - referenced)} spill files of dropped candidates left"
