"""Hostile model files, generated on the fly (nothing binary is committed).

Each builder writes into `folder` and returns the model path (plus any extra CLI arguments).
"""

from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

VI = helper.make_tensor_value_info


def small_cnn(*, opset: int = 17, ir: int = 10, seed: int = 0, batch="1") -> onnx.ModelProto:
    """Conv(3->8) -> Relu -> Conv(8->8) -> Relu -> Conv(8->4): two prunable groups."""
    rng = np.random.default_rng(seed)
    inits, nodes = [], []
    x, cin = "x", 3
    for i, cout in enumerate((8, 8, 4)):
        w = (rng.standard_normal((cout, cin, 3, 3)) * np.exp(rng.uniform(-1, 1, (cout, 1, 1, 1)))).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"),
                  numpy_helper.from_array(rng.standard_normal(cout).astype(np.float32), f"b{i}")]
        nodes.append(helper.make_node("Conv", [x, f"w{i}", f"b{i}"], [f"c{i}"], name=f"conv{i}",
                                      kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
        x, cin = f"c{i}", cout
        if i < 2:
            nodes.append(helper.make_node("Relu", [x], [f"r{i}"], name=f"relu{i}"))
            x = f"r{i}"
    dims = [int(batch) if batch.isdigit() else batch, 3, 8, 8]
    graph = helper.make_graph(nodes, "small_cnn", [VI("x", TensorProto.FLOAT, dims)],
                              [VI(x, TensorProto.FLOAT, [dims[0], 4, 8, 8])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir)


def save(model: onnx.ModelProto, path) -> str:
    path.write_bytes(model.SerializeToString())
    return str(path)


def shared_initializer() -> onnx.ModelProto:
    """Two parallel branches whose second convs read the same weight, then are added: the shared
    initializer sits in two prunable groups (each branch's hidden channels)."""
    rng = np.random.default_rng(1)
    w = lambda *s: numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), None)  # noqa: E731
    inits = []

    def const(name, *shape):
        t = w(*shape)
        t.name = name
        inits.append(t)
        return name

    const("wa", 6, 3, 3, 3), const("wb", 6, 3, 3, 3), const("shared", 4, 6, 1, 1)
    conv = dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    nodes = [helper.make_node("Conv", ["x", "wa"], ["a"], name="conv_a", **conv),
             helper.make_node("Relu", ["a"], ["ra"], name="relu_a"),
             helper.make_node("Conv", ["ra", "shared"], ["pa"], name="proj_a", kernel_shape=[1, 1]),
             helper.make_node("Conv", ["x", "wb"], ["b"], name="conv_b", **conv),
             helper.make_node("Relu", ["b"], ["rb"], name="relu_b"),
             helper.make_node("Conv", ["rb", "shared"], ["pb"], name="proj_b", kernel_shape=[1, 1]),
             helper.make_node("Add", ["pa", "pb"], ["y"], name="add")]
    graph = helper.make_graph(nodes, "shared", [VI("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [VI("y", TensorProto.FLOAT, [1, 4, 8, 8])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


# --- builders: folder -> (model path, extra args) ---------------------------------------------

def empty(folder):
    (folder / "m.onnx").write_bytes(b"")
    return str(folder / "m.onnx"), []


def truncated(folder):
    data = small_cnn().SerializeToString()
    (folder / "m.onnx").write_bytes(data[: len(data) // 3])
    return str(folder / "m.onnx"), []


def random_bytes(folder):
    (folder / "m.onnx").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return str(folder / "m.onnx"), []


def bit_flipped(folder):
    """A flipped bit in the graph's structure (the first node's op_type length byte)."""
    data = bytearray(small_cnn().SerializeToString())
    at = data.index(b"Conv") - 1
    data[at] ^= 0x40
    (folder / "m.onnx").write_bytes(bytes(data))
    return str(folder / "m.onnx"), []


def missing_external_data(folder):
    model = small_cnn()
    onnx.save_model(model, str(folder / "m.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="m.onnx.data", size_threshold=0)
    (folder / "m.onnx.data").unlink()
    return str(folder / "m.onnx"), []


def short_external_data(folder):
    """The data file ends before the last tensor's bytes (a partial copy)."""
    model = small_cnn()
    onnx.save_model(model, str(folder / "m.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="m.onnx.data", size_threshold=0)
    data = folder / "m.onnx.data"
    data.write_bytes(data.read_bytes()[:-8])
    return str(folder / "m.onnx"), []


def external_data_outside_folder(folder):
    """A weight whose data location climbs out of the model's folder (onnxruntime refuses these too)."""
    model = small_cnn()
    sub = folder / "model"
    sub.mkdir()
    onnx.save_model(model, str(sub / "m.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="m.onnx.data", size_threshold=0)
    os.replace(sub / "m.onnx.data", folder / "secret.bin")
    m = onnx.load(str(sub / "m.onnx"), load_external_data=False)
    for t in m.graph.initializer:
        next(e for e in t.external_data if e.key == "location").value = "../secret.bin"
    (sub / "m.onnx").write_bytes(m.SerializeToString())
    return str(sub / "m.onnx"), []


def ir_too_new(folder):
    model = small_cnn()
    model.ir_version = 99
    return save(model, folder / "m.onnx"), []


def opset_too_old(folder):
    return save(small_cnn(opset=5, ir=3), folder / "m.onnx"), []


def custom_domain_op(folder):
    model = small_cnn()
    model.graph.node[1].op_type, model.graph.node[1].domain = "MysteryRelu", "com.example"
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    return save(model, folder / "m.onnx"), []


def duplicate_node_names(folder):
    model = small_cnn()
    for node in model.graph.node:
        node.name = "same"
    return save(model, folder / "m.onnx"), []


def dangling_input(folder):
    model = small_cnn()
    model.graph.node[2].input[0] = "nowhere"
    return save(model, folder / "m.onnx"), []


def initializer_as_input(folder):
    model = small_cnn(ir=3, opset=9)
    for init in model.graph.initializer:
        model.graph.input.append(VI(init.name, TensorProto.FLOAT, list(init.dims)))
    return save(model, folder / "m.onnx"), []


def shared_initializer_model(folder):
    return save(shared_initializer(), folder / "m.onnx"), []


def symbolic_dims(folder):
    return save(small_cnn(batch="N"), folder / "m.onnx"), []


def output_without_shape(folder):
    model = small_cnn()
    out = model.graph.output[0]
    model.graph.output.remove(out)
    model.graph.output.append(onnx.ValueInfoProto(name=out.name))
    return save(model, folder / "m.onnx"), []


def ir_newer_than_runtime(folder):
    """IR 14 (what onnx 1.23 writes by default) is readable by onnx but not by onnxruntime 1.31."""
    model = small_cnn()
    model.ir_version = 14
    return save(model, folder / "m.onnx"), []
