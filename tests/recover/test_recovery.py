"""Recovery of a pruned zoo keyword spotter: only initializer values change, the recovered model
is closer to the original on held-out voices than the unrecovered one, same seed -> same bytes;
and `prune --recover` on the command line."""

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from onnxprune.recover import available

if not available():
    pytest.skip("needs the recover extra (torch, onnx2torch)", allow_module_level=True)

from onnxprune.api import PruneConfig, prune  # noqa: E402
from onnxprune.data import DataConfig, load_examples  # noqa: E402
from onnxprune.recover import RecoverConfig, recover_pruned  # noqa: E402
from onnxprune.recover.check import skeleton  # noqa: E402
from zoo_kws import FRONT, ROOT, ZOO, kl_to_original, kws_feeds  # noqa: E402


@pytest.fixture(scope="module")
def case():
    model = onnx.load(ZOO / "kws_dscnn.onnx")
    calib, held_out = kws_feeds(model, "calib", 64), kws_feeds(model, "eval", 60)
    result = prune(model, config=PruneConfig(ratio=0.5, criterion="reconstruction", compensate="lstsq",
                                             calibration=calib))
    config = RecoverConfig(steps=60, seconds=120, eval_every=20, seed=3)
    rec = recover_pruned(model, result, calib, config)
    return model, result, rec, calib, held_out, config


def test_only_initializer_values_change(case):
    _, result, rec, *_ = case
    before, after = result.model, rec.model
    assert skeleton(before) == skeleton(after)
    g0, g1 = before.graph, after.graph
    assert [n.SerializeToString() for n in g0.node] == [n.SerializeToString() for n in g1.node]
    assert [i.SerializeToString() for i in g0.input] == [i.SerializeToString() for i in g1.input]
    assert [o.SerializeToString() for o in g0.output] == [o.SerializeToString() for o in g1.output]
    assert [(t.name, list(t.dims), t.data_type) for t in g0.initializer] == \
        [(t.name, list(t.dims), t.data_type) for t in g1.initializer]
    assert (before.ir_version, list(before.opset_import)) == (after.ir_version, list(after.opset_import))
    changed = [t0.name for t0, t1 in zip(g0.initializer, g1.initializer)
               if not np.array_equal(numpy_helper.to_array(t0), numpy_helper.to_array(t1))]
    assert len(changed) >= 10 and rec.trained == 20
    onnx.checker.check_model(after, full_check=True)


def test_recovered_model_is_closer_to_the_original_on_held_out_voices(case):
    model, result, rec, _, held_out, _ = case
    before, after = kl_to_original(model, result.model, held_out), kl_to_original(model, rec.model, held_out)
    assert after < 0.8 * before, (before, after)
    assert rec.after["loss"] < rec.before["loss"]


def test_same_seed_same_bytes(case):
    model, result, rec, calib, _, config = case
    again = recover_pruned(model, result, calib, config)
    assert again.model.SerializeToString() == rec.model.SerializeToString()


def test_cli_prune_recover(tmp_path):
    out, report = tmp_path / "rec.onnx", tmp_path / "r.json"
    common = [str(ZOO / "kws_dscnn.onnx"), "--ratio", "0.5", "--criterion", "reconstruction", "--compensate", "lstsq",
              "--data", str(ZOO / "data/kws/calib/manifest.jsonl"), "--frontend", FRONT, "--limit", "24"]
    proc = subprocess.run([sys.executable, "-m", "onnxprune", "prune", common[0], str(out), *common[1:],
                           "--recover", "--recover-time", "4", "--report", str(report)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "recover:" in proc.stdout and "top-1 agreement" in proc.stdout
    rec = json.loads(report.read_text())["recover"]
    assert rec["after"]["loss"] <= rec["before"]["loss"] and rec["steps"] > 0 and rec["seconds"] < 60
    model = onnx.load(common[0])
    feeds = [ex.feeds for ex in load_examples(model, DataConfig(common[8], frontend=FRONT, limit=24))]
    prune(model, config=PruneConfig(ratio=0.5, criterion="reconstruction", compensate="lstsq",
                                    calibration=feeds)).save(tmp_path / "plain.onnx")
    a, b = onnx.load(tmp_path / "plain.onnx"), onnx.load(out)
    assert skeleton(a) == skeleton(b)


def test_recover_without_data_is_a_usage_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "onnxprune", "prune", str(ZOO / "kws_dscnn.onnx"),
                           str(tmp_path / "o.onnx"), "--recover"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and "--recover needs calibration data" in proc.stderr
    assert not (tmp_path / "o.onnx").exists()


def test_variable_length_batches_are_length_buckets():
    """Utterances of different lengths: a batch is a run of examples adjacent in length, cropped to
    its shortest (not to the shortest of the whole set), and its mixup mates come from the same run."""
    import torch

    from onnxprune.recover.distill import _batch, _crop_axis

    lengths = [12, 100, 40, 98, 95, 41, 43, 97]
    xs = [(torch.full((1, 1, n, 3), float(n)),) for n in lengths]  # each example's values are its length
    crop = _crop_axis(xs)
    assert crop == (0, 2, 12)
    by_length = sorted(range(len(xs)), key=lambda i: (lengths[i], i))
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(40):
        (x,) = _batch(xs, rng, 3, 0.0, crop, by_length)
        rows = x[:, 0, 0, 0].tolist()
        assert x.shape[2] == min(rows)  # cropped to the shortest of its batch
        assert sorted(rows) in [sorted(lengths)[i:i + 3] for i in range(len(lengths) - 2)]  # adjacent in length
        seen.add(x.shape[2])
        (x,) = _batch(xs, rng, 3, 1.0, crop, by_length)
        assert x.min() >= x.shape[2] - 1e-4  # every mix is of two examples of the run, none shorter
    assert 12 in seen and max(seen) >= 95  # short and long runs both drawn; long ones stay long
