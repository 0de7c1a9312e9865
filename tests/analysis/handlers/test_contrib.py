"""com.microsoft fusions from onnxruntime's transformer optimizer: Gelu, FastGelu, QuickGelu,
BiasGelu, BiasAdd, FusedMatMul (exact channel pruning through them) and SkipLayerNormalization
(blocks, naming the normalisation over the channel axis)."""

import numpy as np
import onnx
import pytest

from builders import GraphBuilder, assert_ratio0_identical
from onnxprune import analyze
from prune_checks import prune_ok

S, H = 5, 32
MS = "com.microsoft"


def _finish(m, out_dim=8):
    m.opset_import.add(domain=MS, version=1)
    out = m.graph.output[0]
    out.CopyFrom(onnx.helper.make_tensor_value_info(out.name, onnx.TensorProto.FLOAT, [1, S, out_dim]))
    return m


def _fused_out(b, h, trans_b, alpha=0.5):
    w = b.weight(8, H) if trans_b else b.weight(8, H).T
    return b.op("FusedMatMul", [h, b.const(w)], domain=MS, transB=int(trans_b), alpha=alpha)


@pytest.mark.parametrize("act", ["Gelu", "QuickGelu", "FastGelu", "BiasGelu"])
@pytest.mark.parametrize("trans_b", [0, 1])
def test_activation_then_fused_matmul(act, trans_b):
    b = GraphBuilder(seed=310, opset=17)
    x = b.input("x", [1, S, 16])
    h = b.matmul(x, 16, H)
    ins = [h] + ([b.const(b.rng.normal(0, 0.1, H), "bias")] if act in ("FastGelu", "BiasGelu") else [])
    a = b.op(act, ins, domain=MS, **({"alpha": 1.702} if act == "QuickGelu" else {}))
    y = _fused_out(b, a, trans_b)
    m = _finish(b.model([y]))
    r = prune_ok(m, ratio=0.5)
    w = {t.name: t for t in r.model.graph.initializer}
    fused = next(n for n in r.model.graph.node if n.op_type == "FusedMatMul")
    assert tuple(w[fused.input[1]].dims) == ((8, H // 2) if trans_b else (H // 2, 8))
    if len(ins) > 1:
        act_node = next(n for n in r.model.graph.node if n.op_type == act)
        assert tuple(w[act_node.input[1]].dims) == (H // 2,)
    assert_ratio0_identical(m)


def test_fused_matmul_weight_columns_are_sources():
    """A transposed FusedMatMul's weight rows are its output channels."""
    b = GraphBuilder(seed=311, opset=17)
    x = b.input("x", [1, S, 16])
    h = b.op("FusedMatMul", [x, b.const(b.weight(H, 16))], domain=MS, transB=1, alpha=1.0)
    y = b.matmul(b.op("Relu", [h]), H, 8)
    m = _finish(b.model([y]))
    r = prune_ok(m, ratio=0.5)
    fused = next(n for n in r.model.graph.node if n.op_type == "FusedMatMul")
    w = {t.name: t for t in r.model.graph.initializer}
    assert tuple(w[fused.input[1]].dims) == (H // 2, 16)


def test_skip_layer_norm_blocks_with_the_normalisation_reason():
    b = GraphBuilder(seed=312, opset=17)
    x = b.input("x", [1, S, H])
    h = b.matmul(x, H, H)
    ln = b.op("SkipLayerNormalization", [x, h, b.const(np.ones(H), "g"), b.const(np.zeros(H), "be")],
              domain=MS, epsilon=1e-5)
    y = b.matmul(ln, H, 8)
    m = _finish(b.model([y]))
    a = analyze(m)
    g = next(g for g in a.groups if g.size == H)
    assert not g.prunable
    assert any("SkipLayerNormalization" in r and "normalises over the channel axis" in r for r in g.blocked_by)


def test_fused_matmul_macs():
    from onnxprune.core import cost as stats

    b = GraphBuilder(seed=313, opset=17)
    x = b.input("x", [1, S, 16])
    h = b.op("FusedMatMul", [x, b.const(b.weight(H, 16))], domain=MS, transB=1, alpha=1.0)
    m = _finish(b.model([b.matmul(h, H, 8)]))
    shapes = {x: (1, S, 16), h: (1, S, H), m.graph.output[0].name: (1, S, 8)}
    assert stats.count_macs(m, shapes) == S * H * 16 + S * 8 * H

