"""Build an ONNX model over 2 GB with external data, in chunks (never the whole model in memory).

    python tests/reliability/large.py OUT_DIR [HIDDEN]

x[1, H] -> Gemm(H->H) -> Relu -> Gemm(H->H) -> Relu -> Gemm(H->16): with H = 16384 the two big
weights are 1 GiB each, 2.15 GB in all, in OUT_DIR/large.onnx.data.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper

CHUNK_ROWS = 1024

# a CLI child that reports its own peak RSS on exit: VmHWM after exec, unlike the parent's
# RUSAGE_CHILDREN, which also counts the pages a fork shares with a big parent
_CHILD = """import atexit, sys
def report():
    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]
    sys.stderr.write(f'\\nHWM {hwm}\\n')
atexit.register(report)
from onnxprune.cli.main import main
sys.argv = ['onnxprune'] + sys.argv[1:]
main()
"""


def run_measured(*args, timeout=1800) -> tuple[subprocess.CompletedProcess, float]:
    """Run `onnxprune ARGS` in a child; (result, its peak RSS in MB, mapped weight pages included)."""
    res = subprocess.run([sys.executable, "-c", _CHILD, *map(str, args)], capture_output=True, text=True,
                         timeout=timeout)
    hwm = [line for line in res.stderr.splitlines() if line.startswith("HWM ")]
    return res, int(hwm[-1].split()[1]) / 1024 if hwm else float("nan")


def _external(name: str, dims, offset: int, length: int, location: str) -> TensorProto:
    t = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=list(dims))
    t.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        entry = t.external_data.add()
        entry.key, entry.value = key, value
    return t


def build(folder: Path, hidden: int = 16384, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    location = "large.onnx.data"
    layers = [(hidden, hidden), (hidden, hidden), (hidden, 16)]  # (in, out), Gemm transB=1: W is out x in
    inits, nodes, x = [], [], "x"
    with open(folder / location, "wb") as fh:
        for i, (cin, cout) in enumerate(layers):
            offset = fh.tell()
            scale = np.exp(rng.uniform(-1, 1, cout)).astype(np.float32) / np.sqrt(cin)
            for r0 in range(0, cout, CHUNK_ROWS):
                rows = min(CHUNK_ROWS, cout - r0)
                block = rng.standard_normal((rows, cin), dtype=np.float32) * scale[r0:r0 + rows, None]
                fh.write(block.astype(np.float32).tobytes())
            inits.append(_external(f"W{i}", (cout, cin), offset, fh.tell() - offset, location))
            offset = fh.tell()
            fh.write((rng.standard_normal(cout, dtype=np.float32) * np.float32(0.1)).astype(np.float32).tobytes())
            inits.append(_external(f"B{i}", (cout,), offset, fh.tell() - offset, location))
            nodes.append(helper.make_node("Gemm", [x, f"W{i}", f"B{i}"], [f"g{i}"], name=f"gemm{i}", transB=1))
            x = f"g{i}"
            if i < len(layers) - 1:
                nodes.append(helper.make_node("Relu", [x], [f"r{i}"], name=f"relu{i}"))
                x = f"r{i}"
    vi = helper.make_tensor_value_info
    graph = helper.make_graph(nodes, "large", [vi("x", TensorProto.FLOAT, [1, hidden])],
                              [vi(x, TensorProto.FLOAT, [1, 16])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    path = folder / "large.onnx"
    path.write_bytes(model.SerializeToString())
    return path


if __name__ == "__main__":
    print(build(Path(sys.argv[1]), *(int(a) for a in sys.argv[2:3])))
