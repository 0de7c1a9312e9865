"""Regression tests for crashes the reliability corpora found."""

from __future__ import annotations

import corpus
from onnxprune.api import prune


def _case(kind, name):
    return corpus.load_case(dict(corpus.cases((kind,)))[f"{kind}/{name}"])[0]


def test_sequence_valued_outputs_do_not_crash_shape_probe():
    """Was: ValueError from np.asarray on an ORT sequence output in shapes._shapes_from_runtime."""
    model = _case("simple", "test_sequence_model1")
    result = prune(model, ratio=0.0)
    assert result.verify.passed, result.verify.message


def test_reference_that_cannot_run_on_seeded_inputs_is_a_failed_verification():
    """Was: an ORT exception escaping verify() as an 'internal error' (Col2Im on random data)."""
    result = prune(_case("node", "test_col2im_5d"), ratio=0.0)
    assert not result.verify.passed
    assert "cannot run the reference (original) model on seeded inputs" in result.verify.message


def test_save_into_a_file_as_directory_is_a_usage_error(tmp_path):
    """Was: NotADirectoryError from tempfile.mkdtemp outside save_model's try (an internal error)."""
    import pytest

    import hostile
    from onnxprune.errors import UsageError
    from onnxprune.core.io import save_model

    (tmp_path / "afile").write_text("x")
    with pytest.raises(UsageError, match="cannot write"):
        save_model(hostile.small_cnn(), tmp_path / "afile" / "out.onnx")


def test_negative_dim_value_is_symbolic():
    """Was: paddle2onnx's dim_value -1 counted as a fixed dim, so --shape 'conflicted' with it and
    without --shape the model ran with a -1 dim."""
    import pytest

    import hostile
    from onnxprune.api import analyze
    from onnxprune.errors import UsageError

    model = hostile.small_cnn()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = -1
    with pytest.raises(UsageError, match="symbolic input dims need values: x"):
        analyze(model)
    assert analyze(model, shapes={"x": [1, 3, 8, 8]}).input_shapes["x"] == [1, 3, 8, 8]


def test_invalid_utf8_name_is_a_model_error(tmp_path):
    """Was: TypeError in fingerprint() - protobuf returns bytes for a string field with invalid UTF-8."""
    import pytest

    import hostile
    from onnxprune.errors import ModelError
    from onnxprune.core.io import load_model

    data = bytearray(hostile.small_cnn().SerializeToString())
    data[data.index(b"w0")] ^= 0xC0  # 'w' becomes a lone UTF-8 lead byte
    (tmp_path / "m.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="not valid UTF-8"):
        load_model(tmp_path / "m.onnx")


def test_unknown_initializer_dtype_is_a_model_error(tmp_path):
    """Was: KeyError from onnx.helper.tensor_dtype_to_np_dtype in count_params (a flipped bit)."""
    import pytest

    import hostile
    from onnxprune.errors import ModelError
    from onnxprune.core.io import load_model

    model = hostile.small_cnn()
    model.graph.initializer[0].data_type = 0
    (tmp_path / "m.onnx").write_bytes(model.SerializeToString())
    with pytest.raises(ModelError, match="unknown data type 0"):
        load_model(tmp_path / "m.onnx")


def test_raw_data_not_matching_dims_is_a_model_error(tmp_path):
    """Was: numpy ValueError (cannot reshape) in the analysis after a dtype or dim was corrupted."""
    import pytest

    import hostile
    from onnxprune.errors import ModelError
    from onnxprune.core.io import load_model

    model = hostile.small_cnn()
    model.graph.initializer[1].data_type = onnx_uint8 = 2  # float bias read as uint8: 32 bytes for 8 items
    assert onnx_uint8 == 2
    (tmp_path / "m.onnx").write_bytes(model.SerializeToString())
    with pytest.raises(ModelError, match="holds 32 bytes"):
        load_model(tmp_path / "m.onnx")
