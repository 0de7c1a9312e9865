"""Build the bundled demo model: a small DS-CNN keyword-spotting network (log-mel input
[1, 1, 49, 40] -> 12 class probabilities) with seeded weights.

It is *speech-shaped*, not trained: the trained zoo models come from the model-zoo recipes.
It exercises what exported KWS models contain: Conv+BatchNorm+Relu, depthwise separable blocks,
residual Adds, a Concat of two branches, global pooling, Flatten -> Gemm, Softmax.

    python models/build_kws_dscnn.py   # rewrites onnxprune/assets/kws_dscnn.onnx
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = Path(__file__).resolve().parent.parent / "onnxprune" / "assets" / "kws_dscnn.onnx"


def build(seed: int = 7) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    nodes, inits = [], []

    def const(name, array):
        inits.append(numpy_helper.from_array(np.asarray(array, dtype=np.float32), name))
        return name

    def conv(x, name, cin, cout, kernel, stride=(1, 1), group=1):
        fan_in = cin // group * kernel[0] * kernel[1]
        w = rng.standard_normal((cout, cin // group, *kernel)) * np.sqrt(2.0 / fan_in)
        # Channel norms spread over a decade, as in trained nets, so magnitude criteria have a signal.
        w *= np.exp(rng.uniform(-1.2, 1.2, size=(cout, 1, 1, 1)))
        pads = [kernel[0] // 2, kernel[1] // 2, (kernel[0] - 1) // 2, (kernel[1] - 1) // 2]
        nodes.append(helper.make_node("Conv", [x, const(f"{name}.weight", w), const(f"{name}.bias", np.zeros(cout))],
                                      [f"{name}.out"], name=name, kernel_shape=list(kernel), strides=list(stride),
                                      pads=pads, group=group))
        return bn_relu(f"{name}.out", name, cout)

    def bn_relu(x, name, c):
        gamma = np.abs(rng.standard_normal(c)) + 0.05
        nodes.append(helper.make_node(
            "BatchNormalization",
            [x, const(f"{name}.bn.gamma", gamma), const(f"{name}.bn.beta", rng.standard_normal(c) * 0.1),
             const(f"{name}.bn.mean", rng.standard_normal(c) * 0.1), const(f"{name}.bn.var", rng.uniform(0.5, 1.5, c))],
            [f"{name}.bn"], name=f"{name}.bn", epsilon=1e-5))
        nodes.append(helper.make_node("Relu", [f"{name}.bn"], [f"{name}.relu"], name=f"{name}.relu"))
        return f"{name}.relu"

    c = 64
    x = conv("logmel", "stem", 1, c, (10, 4), stride=(2, 2))
    for i in range(4):
        dw = conv(x, f"block{i}.dw", c, c, (3, 3), group=c)
        if i == 2:  # two pointwise branches joined by Concat
            a = conv(dw, f"block{i}.pw_a", c, c // 2, (1, 1))
            b = conv(dw, f"block{i}.pw_b", c, c // 2, (1, 1))
            nodes.append(helper.make_node("Concat", [a, b], [f"block{i}.cat"], name=f"block{i}.cat", axis=1))
            y = f"block{i}.cat"
        else:
            y = conv(dw, f"block{i}.pw", c, c, (1, 1))
        if i in (1, 3):
            nodes.append(helper.make_node("Add", [x, y], [f"block{i}.res"], name=f"block{i}.res"))
            y = f"block{i}.res"
        x = y
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"], name="pool"))
    nodes.append(helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten", axis=1))
    w = rng.standard_normal((12, c)) * np.sqrt(1.0 / c)
    nodes.append(helper.make_node("Gemm", ["flat", const("classifier.weight", w), const("classifier.bias", np.zeros(12))],
                                  ["logits"], name="classifier", transB=1))
    nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=-1))
    graph = helper.make_graph(nodes, "kws_dscnn", [helper.make_tensor_value_info("logmel", TensorProto.FLOAT, [1, 1, 49, 40])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 12])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="onnxprune-models")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(build(), str(OUT))
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
