"""`onnxprune quantize` on the zoo keyword spotter, calibrated and compared on real features
(committed FLAC clips through the committed log-mel front-end)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from eval_zoo import ZOO, read_manifest, session
from onnxprune.cli import main
from onnxprune.data import DataConfig
from onnxprune.errors import UsageError
from onnxprune.quantize import QuantizeConfig, quantize

KWS = ZOO / "kws_dscnn.onnx"


def _features(folder: Path, limit: int) -> np.ndarray:
    fe = session(ZOO / "logmel_frontend.onnx")
    rows = read_manifest(folder)[::max(1, len(read_manifest(folder)) // limit)][:limit]
    return np.concatenate([fe.run(None, {"waveform": r["audio"][None]})[0] for r in rows])


@pytest.fixture(scope="module")
def dumps(tmp_path_factory):
    """Calibration features from the calib set, comparison features from the held-out eval set."""
    root = tmp_path_factory.mktemp("q")
    np.savez(root / "calib.npz", logmel=_features(ZOO / "data" / "kws" / "calib", 64))
    np.savez(root / "eval.npz", logmel=_features(ZOO / "data" / "kws" / "eval", 96))
    return root


def _outputs(path, x):
    s = session(Path(path))
    return np.concatenate([s.run(None, {"logmel": x[i:i + 1]})[0] for i in range(len(x))])


@pytest.mark.parametrize("mode", ["dynamic", "static"])
def test_quantized_kws_is_smaller_and_close(tmp_path, dumps, mode):
    out = tmp_path / f"kws_{mode}.onnx"
    data = DataConfig(path=str(dumps / "calib.npz")) if mode == "static" else None
    result = quantize(KWS, out, QuantizeConfig(mode=mode, data=data, per_channel=True))
    assert result.size_after < 0.6 * result.size_before
    model = onnx.load(str(out))
    assert any(n.op_type in ("QuantizeLinear", "DynamicQuantizeLinear", "ConvInteger", "MatMulInteger")
               for n in model.graph.node)
    x = np.load(dumps / "eval.npz")["logmel"]
    ref, got = _outputs(KWS, x), _outputs(out, x)
    # Measured on these 96 held-out clips: max |diff| of the class probabilities stays below 0.1
    # and the top class changes on at most a few percent of them.
    assert np.abs(ref - got).max() < 0.15
    assert np.mean(ref.argmax(1) == got.argmax(1)) >= 0.95
    if mode == "static":
        assert result.calibration_examples == 64


def test_static_without_data_is_usage_error(tmp_path):
    with pytest.raises(UsageError, match="needs calibration data"):
        quantize(KWS, tmp_path / "q.onnx", QuantizeConfig(mode="static"))
    r = CliRunner().invoke(main, ["quantize", str(KWS), str(tmp_path / "q.onnx"), "--mode", "static"])
    assert r.exit_code == 2
    assert "needs calibration data" in r.output
    assert not (tmp_path / "q.onnx").exists()


def test_cli_static_reports_and_writes_only_the_output(tmp_path, dumps):
    out = tmp_path / "out" / "kws_q.onnx"
    out.parent.mkdir()
    r = CliRunner().invoke(main, ["quantize", str(KWS), str(out), "--mode", "static", "--data", str(dumps / "calib.npz"),
                                  "--limit", "16", "--format", "qoperator"])
    assert r.exit_code == 0, r.output
    assert "calibrated on 16 examples" in r.output
    assert "same top class" in r.output
    assert [p.name for p in out.parent.iterdir()] == ["kws_q.onnx"]
    assert any(n.op_type == "QLinearConv" for n in onnx.load(str(out)).graph.node)


def test_bad_data_fails_cleanly_and_leaves_nothing(tmp_path):
    np.savez(tmp_path / "wrong.npz", features=np.zeros((4, 1, 49, 40), np.float32))
    out = tmp_path / "q.onnx"
    before = KWS.read_bytes()
    r = CliRunner().invoke(main, ["quantize", str(KWS), str(out), "--mode", "static", "--data", str(tmp_path / "wrong.npz")])
    assert r.exit_code == 2
    assert "no array for model input(s) logmel" in r.output
    assert "Traceback" not in r.output
    assert not out.exists() and KWS.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["wrong.npz"]


def test_output_equal_to_input_is_refused(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(KWS.read_bytes())
    r = CliRunner().invoke(main, ["quantize", str(model), str(model)])
    assert r.exit_code == 2 and "is the input file" in r.output
    assert model.read_bytes() == KWS.read_bytes()


def test_bundled_dynamic_via_cli(tmp_path):
    from builders import bundled_model

    out = tmp_path / "q.onnx"
    r = CliRunner().invoke(main, ["quantize", str(bundled_model()), str(out)])
    assert r.exit_code == 0, r.output
    assert out.stat().st_size < bundled_model().stat().st_size
    assert "onnxruntime loads it" in r.output


def test_quantize_leaves_the_root_logger_as_it_found_it(tmp_path):
    import logging

    from onnxprune.quantize import QuantizeConfig, quantize
    from builders import bundled_model

    root = logging.getLogger()
    before = root.level
    root.setLevel(logging.INFO)
    try:
        quantize(bundled_model(), tmp_path / "q.onnx", QuantizeConfig(mode="dynamic"))
        assert root.level == logging.INFO
    finally:
        root.setLevel(before)
