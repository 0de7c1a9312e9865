"""Parameters removed at ratio 0.5 on the shipped-export speech fixtures (models/fixtures/speech/),
with the number of prunable head groups and the verification result.

    python benchmarks/coverage_fixtures.py [RATIO]
"""

from __future__ import annotations

import sys
from pathlib import Path

import onnx

import onnxprune

FIXTURES = Path(__file__).resolve().parents[1] / "models" / "fixtures" / "speech"
SHAPES = {"input_features": [2, 40, 100], "input_values": [2, 1600], "x": [2, 8, 20]}


def main(ratio: float = 0.5) -> None:
    print(f"{'fixture':34s} {'params':>8s} {'after':>8s} {'removed':>8s} {'heads':>6s} verify")
    for path in sorted(FIXTURES.glob("speech_*.onnx")):
        model = onnx.load(str(path))
        shapes = {i.name: SHAPES[i.name] for i in model.graph.input if i.name in SHAPES}
        r = onnxprune.prune(model, ratio=ratio, shapes=shapes)
        heads = sum(1 for g in r.analysis.groups if g.is_heads and g.prunable)
        removed = 1 - r.after["params"] / r.before["params"]
        print(f"{path.stem:34s} {r.before['params']:8d} {r.after['params']:8d} {removed:8.1%} {heads:6d} "
              f"{'passed' if r.verify.passed else 'FAILED'}")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 0.5)
