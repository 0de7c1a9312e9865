"""Params removed by onnxsim 0.8.1 structured and head pruning at sparsity 0.5, for comparison with
`python benchmarks/coverage_fixtures.py`. onnxsim pins its own dependencies: run it from its own venv,

    python -m venv /tmp/simvenv && /tmp/simvenv/bin/pip install onnxsim==0.8.1 onnxruntime
    /tmp/simvenv/bin/python benchmarks/compare_onnxsim_pruning.py models/fixtures/speech/speech_whisper_ts_ortopt.onnx
"""

from __future__ import annotations

import sys

import numpy as np
import onnx
import onnxsim.pruning as P


def params(m: onnx.ModelProto) -> int:
    return sum(int(np.prod(t.dims)) for t in m.graph.initializer
               if onnx.helper.tensor_dtype_to_np_dtype(t.data_type).kind == "f")


def main(path: str) -> None:
    m = onnx.load(path)
    base = params(m)
    for name in ("apply_structured_pruning", "apply_attention_head_pruning"):
        try:
            print(name, f"{1 - params(getattr(P, name)(m, 0.5)) / base:.1%}")
        except Exception as exc:  # report what onnxsim refuses
            print(name, "failed", type(exc).__name__, str(exc)[:200])
    both = P.apply_attention_head_pruning(P.apply_structured_pruning(m, 0.5), 0.5)
    print("both", f"{1 - params(both) / base:.1%}")


if __name__ == "__main__":
    main(sys.argv[1])
