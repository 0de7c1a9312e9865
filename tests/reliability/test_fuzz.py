"""Fuzz the loader, analysis, rewrite and verification with mutated models.

Mutations: bit flips, truncation and byte insertion in the serialized protobuf, and field-level
edits through the proto API (op types, inputs, attributes, dims, types, IR/opset versions). The
only acceptable outcomes are success or a clean OnnxpruneError; any other exception, or a run over
the per-example alarm, fails. CI runs a bounded number of examples; set ONNXPRUNE_FUZZ_EXAMPLES
(e.g. 2000) to run longer.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import contextmanager

import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hostile
from onnxprune.api import analyze, prune
from onnxprune.errors import OnnxpruneError
from onnxprune.core.io import load_model

EXAMPLES = int(os.environ.get("ONNXPRUNE_FUZZ_EXAMPLES", "40"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("ONNXPRUNE_FUZZ_EXAMPLES"),
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
ALARM_S = 60

BASES = [hostile.small_cnn(), hostile.shared_initializer()]
OPS = ["Conv", "Relu", "Add", "Gemm", "MatMul", "Reshape", "Concat", "Softmax", "Identity", "LSTM", "Nope", ""]


@contextmanager
def alarm(seconds: int):
    def boom(*_):
        raise TimeoutError(f"no result after {seconds}s (hang?)")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def byte_mutation(data: bytes, draw) -> bytes:
    kind = draw(st.sampled_from(["flip", "truncate", "insert", "flips"]))
    buf = bytearray(data)
    if kind == "truncate":
        return bytes(buf[: draw(st.integers(0, len(buf) - 1))])
    if kind == "insert":
        at = draw(st.integers(0, len(buf)))
        return bytes(buf[:at] + draw(st.binary(min_size=1, max_size=16)) + buf[at:])
    for _ in range(1 if kind == "flip" else draw(st.integers(2, 8))):
        at = draw(st.integers(0, len(buf) - 1))
        buf[at] ^= 1 << draw(st.integers(0, 7))
    return bytes(buf)


def field_mutation(model: onnx.ModelProto, draw) -> onnx.ModelProto:
    m = onnx.ModelProto.FromString(model.SerializeToString())
    g = m.graph
    node = g.node[draw(st.integers(0, len(g.node) - 1))]
    kind = draw(st.sampled_from(["op", "input", "drop_input", "attr", "dims", "dtype", "ir", "opset",
                                 "drop_init", "swap", "output_name", "input_dims"]))
    if kind == "op":
        node.op_type = draw(st.sampled_from(OPS))
    elif kind == "input" and node.input:
        node.input[draw(st.integers(0, len(node.input) - 1))] = draw(
            st.sampled_from([n for n2 in g.node for n in n2.output] + ["", "x", "missing"]))
    elif kind == "drop_input" and node.input:
        del node.input[draw(st.integers(0, len(node.input) - 1))]
    elif kind == "attr":
        name = draw(st.sampled_from(["group", "kernel_shape", "pads", "strides", "axis", "transB", "dilations"]))
        del node.attribute[:]
        value = draw(st.one_of(st.integers(-3, 9), st.lists(st.integers(-2, 9), min_size=1, max_size=5)))
        node.attribute.append(onnx.helper.make_attribute(name, value))
    elif kind == "dims" and g.initializer:
        t = g.initializer[draw(st.integers(0, len(g.initializer) - 1))]
        t.dims[draw(st.integers(0, len(t.dims) - 1))] = draw(st.integers(-1, 20))
    elif kind == "dtype" and g.initializer:
        g.initializer[draw(st.integers(0, len(g.initializer) - 1))].data_type = draw(st.integers(0, 25))
    elif kind == "ir":
        m.ir_version = draw(st.integers(0, 20))
    elif kind == "opset":
        m.opset_import[0].version = draw(st.integers(0, 30))
    elif kind == "drop_init" and g.initializer:
        del g.initializer[draw(st.integers(0, len(g.initializer) - 1))]
    elif kind == "swap" and len(g.node) > 1:
        i, j = draw(st.integers(0, len(g.node) - 1)), draw(st.integers(0, len(g.node) - 1))
        a, b = onnx.NodeProto(), onnx.NodeProto()
        a.CopyFrom(g.node[i]), b.CopyFrom(g.node[j])
        g.node[i].CopyFrom(b), g.node[j].CopyFrom(a)
    elif kind == "output_name":
        g.output[0].name = draw(st.sampled_from(["x", "nowhere", g.node[0].output[0]]))
    elif kind == "input_dims":
        dims = g.input[0].type.tensor_type.shape.dim
        dims[draw(st.integers(0, len(dims) - 1))].dim_value = draw(st.integers(-2, 9))
    return m


def exercise(path) -> None:
    """load -> analyze -> prune(0.3, verified): success or OnnxpruneError, nothing else."""
    with alarm(ALARM_S):
        try:
            model = load_model(path)
            analyze(model)
            prune(model, ratio=0.3, round_to=1)
        except OnnxpruneError:
            pass


@SETTINGS
@given(data=st.data(), base=st.sampled_from(range(len(BASES))))
def test_fuzz_serialized_bytes(data, base, tmp_path_factory):
    raw = byte_mutation(BASES[base].SerializeToString(), data.draw)
    path = tmp_path_factory.mktemp("fuzz") / "m.onnx"
    path.write_bytes(raw)
    exercise(path)


@SETTINGS
@given(data=st.data(), base=st.sampled_from(range(len(BASES))))
def test_fuzz_proto_fields(data, base, tmp_path_factory):
    model = field_mutation(BASES[base], data.draw)
    path = tmp_path_factory.mktemp("fuzz") / "m.onnx"
    path.write_bytes(model.SerializeToString())
    exercise(path)


@pytest.mark.parametrize("seed", [1, 2])
def test_fuzzed_model_through_cli(seed, tmp_path):
    """Two mutated files through the real CLI: exit 0/1/2, one-line error, no traceback."""
    import random

    rnd = random.Random(seed)
    data = bytearray(hostile.small_cnn().SerializeToString())
    for _ in range(4):
        data[rnd.randrange(len(data))] ^= 1 << rnd.randrange(8)
    path = tmp_path / "m.onnx"
    path.write_bytes(bytes(data))
    for args in (["inspect", path], ["prune", path, tmp_path / "out.onnx", "--ratio", "0.3"]):
        res = subprocess.run([sys.executable, "-m", "onnxprune", *map(str, args)], capture_output=True,
                             text=True, timeout=120)
        assert res.returncode in (0, 1, 2), res.stderr
        assert "Traceback" not in res.stderr and "internal error" not in res.stderr, res.stderr
        if res.returncode:
            assert sum(line.startswith("error:") for line in res.stderr.splitlines()) == 1, res.stderr


def external_mutation(folder, draw) -> str:
    """A model saved with external data whose references or data file are then damaged."""
    model = onnx.ModelProto()
    model.CopyFrom(BASES[0])
    onnx.save_model(model, str(folder / "m.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="m.onnx.data", size_threshold=0)
    m = onnx.load(str(folder / "m.onnx"), load_external_data=False)
    t = m.graph.initializer[draw(st.integers(0, len(m.graph.initializer) - 1))]
    kind = draw(st.sampled_from(["location", "offset", "length", "key", "dims", "dtype", "truncate", "none"]))
    entry = {e.key: e for e in t.external_data}
    if kind == "location":
        entry["location"].value = draw(st.sampled_from(["../m.onnx.data", "/etc/hostname", "", "nope.bin", "m.onnx",
                                                        ".", "sub/../m.onnx.data", "m.onnx.data\x00x"]))
    elif kind in ("offset", "length"):
        value = draw(st.one_of(st.integers(-10, 1 << 40).map(str), st.sampled_from(["", "x", "1e3", " 4"])))
        if kind in entry:
            entry[kind].value = value
        else:
            e = t.external_data.add()
            e.key, e.value = kind, value
    elif kind == "key":
        e = t.external_data.add()
        e.key, e.value = draw(st.sampled_from(["checksum", "basepath", "", "location"])), "zz"
    elif kind == "dims":
        t.dims[draw(st.integers(0, len(t.dims) - 1))] = draw(st.integers(0, 1 << 20))
    elif kind == "dtype":
        t.data_type = draw(st.integers(0, 25))
    elif kind == "truncate":
        data = folder / "m.onnx.data"
        data.write_bytes(data.read_bytes()[: draw(st.integers(0, data.stat().st_size))])
    (folder / "m.onnx").write_bytes(m.SerializeToString())
    return str(folder / "m.onnx")


@SETTINGS
@given(data=st.data(), lazy=st.booleans())
def test_fuzz_external_data(data, lazy, tmp_path_factory, monkeypatch):
    """Damaged external-data references: read in (small tensors) or left on disk (LAZY_BYTES = 0)."""
    from onnxprune.core import external as weights

    monkeypatch.setattr(weights, "LAZY_BYTES", 0 if lazy else 1 << 20)
    exercise(external_mutation(tmp_path_factory.mktemp("fuzz"), data.draw))
