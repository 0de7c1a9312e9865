"""Static int8 must hold on every x86 CPU. ORT runs static QDQ as u8 x s8 on x86; without VNNI
(AVX2/AVX-512 only) VPMADDUBSW sums pairs of products in 16 bits and saturates, which cost the
zoo KWS up to 0.82 in probability on such a CPU. Static mode therefore writes 7-bit weights
(|w| <= 64: 255 * 128 < 32767, no pair can saturate). Checked two ways: on the weights (holds
anywhere), and, where qemu-user is installed, by running the model on an emulated Haswell
(AVX2, no VNNI) and comparing with this machine's outputs."""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest

from eval_zoo import ZOO, read_manifest, session
from onnxprune.data import DataConfig
from onnxprune.quantize.ort import QuantizeConfig, max_int8_weight, quantize

KWS = ZOO / "kws_dscnn.onnx"


def _features(folder, limit):
    fe = session(ZOO / "logmel_frontend.onnx")
    rows = read_manifest(folder)
    rows = rows[::max(1, len(rows) // limit)][:limit]
    return np.concatenate([fe.run(None, {"waveform": r["audio"][None]})[0] for r in rows])


@pytest.fixture(scope="module")
def static_kws(tmp_path_factory):
    root = tmp_path_factory.mktemp("qcpu")
    np.savez(root / "calib.npz", logmel=_features(ZOO / "data" / "kws" / "calib", 64))
    np.save(root / "eval.npy", _features(ZOO / "data" / "kws" / "eval", 48))
    out = root / "kws_static.onnx"
    result = quantize(KWS, out, QuantizeConfig(mode="static", data=DataConfig(path=str(root / "calib.npz"))))
    return root, out, result


def test_static_weights_cannot_saturate_without_vnni(static_kws):
    _, out, result = static_kws
    assert result.reduce_range and not result.per_channel
    assert result.max_weight is not None and result.max_weight <= 64
    assert max_int8_weight(onnx.load(str(out))) == result.max_weight


def test_full_range_is_8_bit_and_says_where_it_can_differ(static_kws, tmp_path):
    root, _, _ = static_kws
    result = quantize(KWS, tmp_path / "full.onnx", QuantizeConfig(mode="static", reduce_range=False,
                                                                   data=DataConfig(path=str(root / "calib.npz"))))
    assert result.max_weight > 64
    assert any("without VNNI" in n for n in result.notes)


_RUN = """
import sys, numpy as np, onnxruntime as ort
o = ort.SessionOptions(); o.intra_op_num_threads = 1
s = ort.InferenceSession(sys.argv[1], o, providers=["CPUExecutionProvider"])
x = np.load(sys.argv[2])
np.save(sys.argv[3], np.concatenate([s.run(None, {"logmel": x[i:i + 1]})[0] for i in range(len(x))]))
"""


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64") or shutil.which("qemu-x86_64") is None,
                    reason="needs qemu-user (apt install qemu-user) to emulate a CPU without VNNI")
def test_same_outputs_on_an_emulated_cpu_without_vnni(static_kws, tmp_path):
    root, out, _ = static_kws
    script = tmp_path / "run.py"
    script.write_text(_RUN)
    here, haswell = tmp_path / "here.npy", tmp_path / "haswell.npy"
    subprocess.run([sys.executable, str(script), str(out), str(root / "eval.npy"), str(here)], check=True)
    subprocess.run(["qemu-x86_64", "-cpu", "Haswell", sys.executable, str(script), str(out), str(root / "eval.npy"),
                    str(haswell)], check=True, capture_output=True)
    a, b = np.load(here), np.load(haswell)
    assert np.abs(a - b).max() < 1e-3  # 8-bit weights: up to 0.34 here
    assert np.array_equal(a.argmax(1), b.argmax(1))
