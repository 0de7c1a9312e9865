"""Params removed by onnxsim 0.8.1 structured and head pruning at sparsity 0.5, for comparison with
`python benchmarks/coverage_fixtures.py`.

Needs: onnxsim 0.8.1. onnxsim pins its own dependencies: run it from its own venv (or from this one
after `pip install -e ".[compare]"`),

    python -m venv /tmp/simvenv && /tmp/simvenv/bin/pip install onnxsim==0.8.1 onnxruntime
    /tmp/simvenv/bin/python benchmarks/compare_onnxsim_pruning.py models/fixtures/speech/speech_whisper_ts_ortopt.onnx \\
        [--sparsity 0.5] [--out benchmarks/results/compare_onnxsim_pruning.md]
"""

from __future__ import annotations

import numpy as np
import onnx

from _common import parser, write


def params(m: onnx.ModelProto) -> int:
    return sum(int(np.prod(t.dims)) for t in m.graph.initializer
               if onnx.helper.tensor_dtype_to_np_dtype(t.data_type).kind == "f")


def main(path: str, sparsity: float = 0.5, out=None) -> None:
    import onnxsim.pruning as P

    m = onnx.load(path)
    base = params(m)
    removed = {}
    for name in ("apply_structured_pruning", "apply_attention_head_pruning"):
        try:
            removed[name] = f"{1 - params(getattr(P, name)(m, sparsity)) / base:.1%}"
        except Exception as exc:  # report what onnxsim refuses
            removed[name] = f"failed {type(exc).__name__} {str(exc)[:200]}"
        print(name, removed[name])
    both = P.apply_attention_head_pruning(P.apply_structured_pruning(m, sparsity), sparsity)
    removed["both"] = f"{1 - params(both) / base:.1%}"
    print("both", removed["both"])
    if out is None:
        return
    lines = [f"onnxsim 0.8.1 on `{path}` ({base} float params), sparsity {sparsity:g}.", "",
             "| onnxsim pruning | params removed |", "|---|---|", *(f"| {k} | {v} |" for k, v in removed.items())]
    try:
        write(out, "\n".join(lines), {"model": path, "sparsity": sparsity, "params": base, "removed": removed})
    except ImportError as exc:  # onnxsim's own venv may lack what onnxprune needs to describe the machine
        print(f"not written to {out}: {exc}")


if __name__ == "__main__":
    ap = parser(__doc__, "compare_onnxsim_pruning.md")
    ap.add_argument("model", help="ONNX model to prune with onnxsim")
    ap.add_argument("--sparsity", type=float, default=0.5)
    args = ap.parse_args()
    main(args.model, args.sparsity, args.out)
