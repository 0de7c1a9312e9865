"""Parameters removed at ratio 0.5 on the shipped-export speech fixtures (models/fixtures/speech/),
with the number of prunable head groups and the verification result.

Needs: nothing beyond the install (the speech fixtures are committed).

    python benchmarks/coverage_fixtures.py [RATIO] [--out benchmarks/results/coverage_fixtures.md]
"""

from __future__ import annotations

import onnx

from _common import REPO, parser, write

import onnxprune

FIXTURES = REPO / "models" / "fixtures" / "speech"
SHAPES = {"input_features": [2, 40, 100], "input_values": [2, 1600], "x": [2, 8, 20], "feats": [2, 50, 24]}
BY_FIXTURE = {"speech_mha_": {"x": [2, 12, 24]}, "speech_emformer_attn_": {"x": [12, 2, 24]},
              "speech_emformer_ts": {"x": [2, 9, 32]}}  # fixture prefix -> shapes


def shapes_for(stem: str, model) -> dict:
    table = next((v for k, v in BY_FIXTURE.items() if stem.startswith(k)), SHAPES)
    return {i.name: table[i.name] for i in model.graph.input if i.name in table}


def main(ratio: float = 0.5, out=None) -> None:
    print(f"{'fixture':34s} {'params':>8s} {'after':>8s} {'removed':>8s} {'heads':>6s} verify")
    rows, raw = [], {}
    for path in sorted(FIXTURES.glob("speech_*.onnx")):
        model = onnx.load(str(path))
        shapes = shapes_for(path.stem, model)
        r = onnxprune.prune(model, ratio=ratio, shapes=shapes)
        heads = sum(1 for g in r.analysis.groups if g.is_heads and g.prunable)
        removed = 1 - r.after["params"] / r.before["params"]
        verify = "passed" if r.verify.passed else "FAILED"
        print(f"{path.stem:34s} {r.before['params']:8d} {r.after['params']:8d} {removed:8.1%} {heads:6d} {verify}")
        raw[path.stem] = {"params_before": r.before["params"], "params_after": r.after["params"],
                          "prunable_head_groups": heads, "verify": r.verify.passed}
        rows.append(f"| {path.stem} | {r.before['params']} | {r.after['params']} | {removed:.1%} | {heads} | {verify} |")
    if out is not None:
        lines = [f"Ratio {ratio:g}.", "", "| fixture | params | after | removed | prunable head groups | verify |",
                 "|---|---:|---:|---:|---:|---|", *rows]
        write(out, "\n".join(lines), {"ratio": ratio, "fixtures": raw})


if __name__ == "__main__":
    ap = parser(__doc__, "coverage_fixtures.md")
    ap.add_argument("ratio", nargs="?", type=float, default=0.5, help="uniform pruning ratio (default 0.5)")
    args = ap.parse_args()
    main(args.ratio, args.out)
