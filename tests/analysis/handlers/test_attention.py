"""com.microsoft Attention / MultiHeadAttention (ONNX Runtime's fused transformer ops): whole
heads go, num_heads shrinks, the output projection loses the heads' rows."""

import onnx

from builders import GraphBuilder, assert_ratio0_identical
from onnxprune import analyze
from prune_checks import attr_of, input_shape, prune_ok

S, H, HEADS = 5, 32, 4


def attention_model(extra_bias=True, heads=HEADS):
    b = GraphBuilder(seed=160, opset=17)
    x = b.input("x", [1, S, 16])
    h = b.matmul(x, 16, H)
    ins = [h, b.const(b.weight(H, 3 * H, axis0_spread=False)), b.const(b.rng.standard_normal(3 * H) * 0.1, "b")]
    att = b.op("Attention", ins if extra_bias else ins[:2], domain="com.microsoft", num_heads=heads)
    y = b.matmul(att, H, 8)
    m = b.model([y])
    return _finish(m), att


def _finish(m):
    """onnx shape inference does not know contrib ops: declare the output like an exporter would."""
    m.opset_import.add(domain="com.microsoft", version=1)
    out = m.graph.output[0]
    out.CopyFrom(onnx.helper.make_tensor_value_info(out.name, onnx.TensorProto.FLOAT, [1, S, 8]))
    return m


def mha_model():
    b = GraphBuilder(seed=161, opset=17)
    x = b.input("x", [1, S, 16])
    q, k, v = (b.matmul(x, 16, H) for _ in range(3))
    bias = b.const(b.rng.standard_normal(3 * H) * 0.1, "b")
    att = b.op("MultiHeadAttention", [q, k, v, bias], domain="com.microsoft", num_heads=HEADS)
    y = b.matmul(att, H, 8)
    m = b.model([y])
    return _finish(m), att


def test_attention_prunes_whole_heads():
    m, att = attention_model()  # (onnxruntime 1.31 crashes on an Attention without bias)
    r = prune_ok(m, ratio=0.5)
    group = next(g for g in r.analysis.groups if g.is_heads)
    assert group.prunable and group.size == HEADS and group.unit == "heads"
    assert attr_of(r.model, att, "num_heads") == 2
    assert input_shape(r.model, att, 1) == (16, 3 * H // 2)
    assert_ratio0_identical(m)


def test_attention_heads_round_to_positions():
    """round_to counts tensor positions: a head of 8 positions is already a multiple of 4."""
    m, att = attention_model()
    r = prune_ok(m, ratio=0.5, round_to=4)
    assert attr_of(r.model, att, "num_heads") == 2


def test_multi_head_attention_couples_q_k_v_per_head():
    m, att = mha_model()
    r = prune_ok(m, ratio=0.5)
    group = next(g for g in r.analysis.groups if g.is_heads)
    assert group.size == HEADS and len(group.sources) == 3  # the Q, K and V projections
    assert attr_of(r.model, att, "num_heads") == 2
    assert input_shape(r.model, att, 3) == (3 * H // 2,)


def test_attention_with_past_blocks():
    m, att = attention_model()
    node = next(n for n in m.graph.node if n.op_type == "Attention")
    node.input.extend(["", "past"])
    node.output.append("present")
    m.graph.input.extend([onnx.helper.make_tensor_value_info("past", 1, [2, 1, HEADS, 0, H // HEADS])])
    groups = analyze(m).groups
    reasons = [r for g in groups for r in g.blocked_by]
    assert any("past input is not supported" in r for r in reasons)
