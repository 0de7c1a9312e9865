"""Build a ResNet keyword-spotting network in code (log-mel [1, 1, 40, 101] -> 12 logits), seeded.

Shaped like Tang & Lin's res-KWS models (BatchNorm folded into the convolutions, as exporters
emit them in eval mode): a 3x3 stem, average pooling, four basic residual blocks at 32 channels,
a strided stage transition with a 1x1 projection shortcut (not removable: its skip path is
computed), two blocks at 64 channels, global pooling and a Gemm head. It is speech-shaped, not
trained: the depth-pruning benchmark uses it for timing and exactness, not accuracy.

    python models/build_resnet_kws.py OUT.onnx
"""

from __future__ import annotations

import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def build(seed: int = 0, widths=(32, 64), blocks=(4, 2)) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    count = [0]

    def name(prefix):
        count[0] += 1
        return f"{prefix}{count[0]}"

    def const(array, prefix):
        n = name(prefix)
        inits.append(numpy_helper.from_array(np.asarray(array, dtype=np.float32), n))
        return n

    def conv(x, cin, cout, k=3, stride=1, relu=True, label="conv", gain=1.0):
        w = rng.standard_normal((cout, cin, k, k)) * np.sqrt(2.0 / (cin * k * k)) * gain
        w *= np.exp(rng.uniform(-0.8, 0.8, size=(cout, 1, 1, 1)))
        out = name(label)
        nodes.append(helper.make_node("Conv", [x, const(w, f"{out}.weight"), const(rng.standard_normal(cout) * 0.05,
                                                                                     f"{out}.bias")],
                                      [out], name=out, kernel_shape=[k, k], pads=[k // 2] * 4, strides=[stride] * 2))
        if not relu:
            return out
        nodes.append(helper.make_node("Relu", [out], [out + ".relu"], name=out + ".relu"))
        return out + ".relu"

    x = "logmel"
    h = conv(x, 1, widths[0], label="stem")
    nodes.append(helper.make_node("AveragePool", [h], ["pool"], name="pool", kernel_shape=[2, 2], strides=[2, 2]))
    h, c = "pool", widths[0]
    for stage, (width, n_blocks) in enumerate(zip(widths, blocks)):
        for b in range(n_blocks):
            stride = 2 if (stage > 0 and b == 0) else 1
            inner = conv(h, c, width, stride=stride, label=f"s{stage}b{b}.conv_a")
            branch = conv(inner, width, width, relu=False, label=f"s{stage}b{b}.conv_b", gain=0.5)
            skip = h if (stride == 1 and c == width) else conv(h, c, width, k=1, stride=stride, relu=False,
                                                               label=f"s{stage}b{b}.proj")
            nodes.append(helper.make_node("Add", [skip, branch], [f"s{stage}b{b}.add"], name=f"s{stage}b{b}.add"))
            nodes.append(helper.make_node("Relu", [f"s{stage}b{b}.add"], [f"s{stage}b{b}.out"],
                                          name=f"s{stage}b{b}.relu"))
            h, c = f"s{stage}b{b}.out", width
    nodes.append(helper.make_node("GlobalAveragePool", [h], ["gap"], name="gap"))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], name="flat"))
    nodes.append(helper.make_node("Gemm", ["flat", const(rng.standard_normal((12, c)) / np.sqrt(c), "head.weight"),
                                           const(np.zeros(12), "head.bias")], ["logits"], name="head", transB=1))
    graph = helper.make_graph(nodes, "resnet_kws", [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, 1, 40, 101])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 12])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="onnxprune-models")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


if __name__ == "__main__":
    onnx.save(build(), sys.argv[1] if len(sys.argv) > 1 else "resnet_kws.onnx")
