"""The (domain, op type) table under the handler registry and the MAC counters."""

import onnx.helper as oh
import pytest

from onnxprune.core.op_table import OpTable


def test_ai_onnx_and_empty_domain_are_one_key():
    table = OpTable("thing")
    table.add("conv", "Conv")
    assert table.get(oh.make_node("Conv", ["x"], ["y"], domain="ai.onnx")) == "conv"
    assert table.get(oh.make_node("Conv", ["x"], ["y"])) == "conv"
    assert table.get(oh.make_node("Conv", ["x"], ["y"], domain="com.microsoft")) is None


def test_second_registration_is_refused():
    table = OpTable("MAC counter")
    table.add(1, "Gelu", domain="com.microsoft")
    with pytest.raises(RuntimeError, match="MAC counter for com.microsoft::Gelu registered twice"):
        table.add(2, "Gelu", domain="com.microsoft")
    with pytest.raises(RuntimeError, match="ai.onnx::MatMul registered twice"):
        table.add(3, "MatMul", "MatMul")
