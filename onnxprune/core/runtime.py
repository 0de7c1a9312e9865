"""onnxruntime sessions and seeded inputs, shared by verification, shape probing and benchmarks."""

from __future__ import annotations

import numpy as np
import onnx

from . import external
from ..errors import ModelError

_NP_TYPES = {
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int16)": np.int16,
    "tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_,
}


def make_session(model: onnx.ModelProto | bytes | str, *, providers=("CPUExecutionProvider",),
                 threads: int = 0, optimization: str = "all", quiet: bool = False, prepack: bool = False):
    """quiet: also silence onnxruntime's own error log (for probes whose failure we report).
    prepack: for timing a model whose weights are on disk as it will run (external.prepare_session)."""
    import onnxruntime as ort

    ort.set_default_logger_severity(3)  # shape-merge warnings from exporters' stale value_info are noise
    opts = ort.SessionOptions()
    opts.log_severity_level = 4 if quiet else 3
    if threads:
        opts.intra_op_num_threads = threads
    opts.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[optimization]
    if isinstance(model, onnx.ModelProto) and external.is_huge(model):
        return _session_via_external_data(model, opts, providers)
    if isinstance(model, onnx.ModelProto):
        from .io import max_ir_version

        model = external.prepare_session(model, opts, prepack=prepack)
        if model.ir_version > max_ir_version():  # onnx writes IR 14, ORT 1.31 reads <= 13: as save does
            model = onnx.ModelProto.FromString(model.SerializeToString())
            model.ir_version = max_ir_version()
        model = model.SerializeToString()
    return ort.InferenceSession(model, sess_options=opts, providers=list(providers))


def _session_via_external_data(model: onnx.ModelProto, opts, providers):
    """Over 2 GiB a model cannot be serialised: write its big tensors to a temporary folder, one at
    a time, let ORT load from the path, then put the tensors back (the caller's model is unchanged)."""
    import os
    import tempfile

    import onnxruntime as ort

    from .io import max_ir_version

    with tempfile.TemporaryDirectory(prefix="onnxprune-session-") as tmp:
        moved = []
        try:
            with open(os.path.join(tmp, "w.data"), "wb") as fh:
                for t in model.graph.initializer:
                    if t.ByteSize() <= 1 << 20 or not t.HasField("raw_data"):
                        continue
                    offset = fh.tell()
                    fh.write(t.raw_data)
                    moved.append((t, offset, fh.tell() - offset))
                    t.ClearField("raw_data")
                    t.data_location = onnx.TensorProto.EXTERNAL
                    for key, value in (("location", "w.data"), ("offset", str(offset)), ("length", str(fh.tell() - offset))):
                        entry = t.external_data.add()
                        entry.key, entry.value = key, value
            ir = model.ir_version
            model.ir_version = min(ir, max_ir_version())
            path = os.path.join(tmp, "m.onnx")
            with open(path, "wb") as fh:
                fh.write(model.SerializeToString())
            model.ir_version = ir
            return ort.InferenceSession(path, sess_options=opts, providers=list(providers))
        finally:
            with open(os.path.join(tmp, "w.data"), "rb") as fh:
                for t, offset, length in moved:
                    fh.seek(offset)
                    t.raw_data = fh.read(length)
                    t.data_location = onnx.TensorProto.DEFAULT
                    del t.external_data[:]


def random_feeds(session, shapes: dict[str, list[int]], seed: int, values: dict | None = None) -> dict[str, np.ndarray]:
    """Seeded inputs: standard normal for floats, small non-negative ints, random booleans;
    `values` (from --input NAME=VALUE) fixes an input, e.g. the sample rate that selects a branch."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for inp in session.get_inputs():
        dims = shapes.get(inp.name)
        if dims is None:
            dims = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
        dtype = _NP_TYPES.get(inp.type)
        if values and inp.name in values:
            feeds[inp.name] = fixed_value(inp.name, values[inp.name], dtype, dims)
            continue
        if dtype is None:
            raise ModelError(f"input '{inp.name}' has type {inp.type}, which random inputs cannot fill")
        if np.issubdtype(dtype, np.floating):
            feeds[inp.name] = rng.standard_normal(dims).astype(dtype)
        elif dtype is np.bool_:
            feeds[inp.name] = rng.integers(0, 2, dims).astype(bool)
        else:
            feeds[inp.name] = rng.integers(0, 8, dims).astype(dtype)
    return feeds


def fixed_value(name: str, value, dtype, dims) -> np.ndarray:
    array = np.asarray(value, dtype=dtype or np.float32)
    if array.size == int(np.prod(dims)):
        return array.reshape(dims)
    if array.size == 1 and len(dims) == 0:
        return array.reshape(())
    raise ModelError(f"--input {name}: {array.size} value(s) do not fill its shape {list(dims)}")
