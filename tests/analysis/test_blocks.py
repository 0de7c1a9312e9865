"""Residual block discovery: what is a candidate, and why the others are not."""

import numpy as np
import pytest

from builders import GraphBuilder
from onnxprune.analysis.blocks import find_blocks
from onnxprune.prune.depth import model_blocks


def _residual(b, h, c, *, tail=None, read_outside=False):
    inner = b.op("Relu", [b.conv(h, c, c)])
    branch = b.conv(inner, c, c)
    if tail:
        branch = b.op(tail, [branch])
    y = b.op("Add", [h, branch])
    return (y, inner) if read_outside else y


def _blocks(model):
    return {b.name: b for b in model_blocks(model)}


def test_basic_residual_is_removable_with_its_last_conv():
    b = GraphBuilder(seed=1)
    x = b.input("x", [1, 4, 6, 6])
    y = _residual(b, b.conv(x, 4, 8), 8)
    blocks = list(_blocks(b.model([y])).values())
    assert len(blocks) == 1 and blocks[0].removable, blocks[0].reason
    assert blocks[0].kind == "conv" and len(blocks[0].body) == 3
    assert [k for _, k in blocks[0].zero] == [1, 2]  # the last Conv's weight and bias


def test_projection_shortcut_is_not_residual():
    b = GraphBuilder(seed=2)
    x = b.input("x", [1, 4, 6, 6])
    h = b.conv(x, 4, 8)
    y = b.op("Add", [b.conv(h, 8, 8, k=1), b.conv(b.op("Relu", [b.conv(h, 8, 8)]), 8, 8)])
    (block,) = _blocks(b.model([y])).values()
    assert not block.removable and block.reason.startswith("not residual")


def test_value_read_outside_the_block_refuses():
    b = GraphBuilder(seed=3)
    x = b.input("x", [1, 4, 6, 6])
    h = b.conv(x, 4, 8)
    y, inner = _residual(b, h, 8, read_outside=True)
    out = b.op("Add", [y, b.conv(inner, 8, 8)])
    blocks = _blocks(b.model([out]))
    first = next(bl for bl in blocks.values() if bl.skip == h)
    assert not first.removable and "also read by" in first.reason


def test_branch_ending_in_sigmoid_has_no_zeroable_projection():
    b = GraphBuilder(seed=4)
    x = b.input("x", [1, 4, 6, 6])
    y = _residual(b, b.conv(x, 4, 8), 8, tail="Sigmoid")
    (block,) = _blocks(b.model([y])).values()
    assert not block.removable and "Sigmoid" in block.reason


def test_broadcasting_add_is_refused():
    b = GraphBuilder(seed=5)
    x = b.input("x", [1, 8, 1, 1])
    wide = b.op("Expand", [x, b.const(np.array([1, 8, 4, 4]), "s", dtype=np.int64)])
    y = b.op("Add", [x, b.conv(wide, 8, 8)])
    (block,) = _blocks(b.model([y])).values()
    assert not block.removable and "broadcasts" in block.reason


def test_bias_adds_are_not_candidates():
    b = GraphBuilder(seed=6)
    x = b.input("x", [2, 8])
    y = b.op("Add", [b.matmul(x, 8, 8), b.const(np.ones(8))])
    assert find_blocks(b.model([y]), {}) == []


@pytest.mark.parametrize("fixture,kinds", [("transformer_dynamo", ["attention", "ffn"]),
                                           ("conformer_dynamo", ["ffn", "attention", "conv", "ffn"])])
def test_fixture_blocks(fixture, kinds):
    from pathlib import Path

    import onnx

    path = Path(__file__).resolve().parents[2] / "models" / "fixtures" / f"{fixture}.onnx"
    blocks = model_blocks(onnx.load(path))
    assert [b.kind for b in blocks if b.removable] == kinds
