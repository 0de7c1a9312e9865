"""Helpers for the data tests: real audio files written with soundfile and tiny real ONNX models
built with onnx.helper (a module of its own so that test files never import a conftest)."""

from __future__ import annotations

import numpy as np
import onnx
import soundfile as sf
from onnx import TensorProto, helper, numpy_helper


def tone(rate: int, seconds: float, freq: float = 440.0, channels: int = 1, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(rate * seconds))) / rate
    mono = amp * np.sin(2 * np.pi * freq * t)
    if channels == 1:
        return mono.astype(np.float32)
    return np.stack([mono * (k + 1) / channels for k in range(channels)], axis=1).astype(np.float32)


def write(path, data, rate, subtype=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, rate, subtype=subtype)
    return path


def _model(nodes, inputs, outputs, inits=(), opset=17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "m", inputs, outputs, list(inits))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 10
    onnx.checker.check_model(m)
    return m


def waveform_model(dims, elem=TensorProto.FLOAT) -> onnx.ModelProto:
    """y = mean(float(x)) over the time axis: a real graph taking a waveform of shape `dims`."""
    vi = helper.make_tensor_value_info
    nodes = [helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMean", ["xf"], ["y"], keepdims=1)]
    return _model(nodes, [vi("x", elem, dims)], [vi("y", TensorProto.FLOAT, [1] * len(dims))])


def framing_frontend(feats: int = 8, frame: int = 400, hop: int = 160, seed: int = 0) -> onnx.ModelProto:
    """[1, samples] -> [1, 1, frames, feats]: frames of `frame` samples every `hop`, projected."""
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.standard_normal((feats, 1, frame)).astype(np.float32) / 20, "w")
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    vi = helper.make_tensor_value_info
    nodes = [helper.make_node("Unsqueeze", ["audio", "axes"], ["a3"]),
             helper.make_node("Conv", ["a3", "w"], ["c"], strides=[hop]),          # [1, feats, frames]
             helper.make_node("Transpose", ["c"], ["t"], perm=[0, 2, 1]),           # [1, frames, feats]
             helper.make_node("Unsqueeze", ["t", "axes"], ["out"])]                 # [1, 1, frames, feats]
    return _model(nodes, [vi("audio", TensorProto.FLOAT, [1, "samples"])],
                  [vi("out", TensorProto.FLOAT, [1, 1, "frames", feats])], [w, axes])


def feature_model(dims) -> onnx.ModelProto:
    """y = x * 2 for an input of shape `dims` (e.g. ['B', 10, 8, 1])."""
    vi = helper.make_tensor_value_info
    two = numpy_helper.from_array(np.array(2.0, np.float32), "two")
    return _model([helper.make_node("Mul", ["x", "two"], ["y"])],
                  [vi("x", TensorProto.FLOAT, dims)], [vi("y", TensorProto.FLOAT, dims)], [two])


def save(model: onnx.ModelProto, path):
    onnx.save(model, str(path))
    return path
