"""Every cached real model (models/fetch.py: speech models plus OCR models from other wheels):
inspect and prune --ratio 0.3 either verify or decline with reasons: never a crash, never a wrong
model. Counts are printed (`pytest -s`) and written to benchmarks/results/real_corpus.json by
`python tests/reliability/test_real_corpus.py`.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from onnxprune.api import analyze, prune
from onnxprune.errors import OnnxpruneError

import tally

pytestmark = pytest.mark.realmodel

# Concrete values for symbolic input dims (None: the model's dims are all fixed).
SHAPES = {
    "silero_vad_v6": {"input": [1, 576]},
    "embedding_model": {"input_1": [1, 76, 32, 1]},
    "melspectrogram": {"input": [1, 1280]},
    "alexa_v0.1": None,
    "hey_jarvis_v0.1": None,
    "hey_mycroft_v0.1": {"input_1": [1, 16, 96]},
    "silero_vad": {"input": [1, 512], "state": [2, 1, 128]},
    "silero_vad_op18_ifless": {"input": [1, 512], "state": [2, 1, 128]},
    "ddddocr_common": {"input1": [1, 1, 64, 128]},
    "ddddocr_common_det": None,
    "ddddocr_common_old": {"input1": [1, 1, 64, 128]},
    "ppocrv6_det_small": {"x": [1, 3, 64, 64]},
    "ppocrv6_rec_small": {"x": [1, 3, 48, 160]},
    "ppocr_mobile_cls": {"x": [1, 3, 48, 192]},
}


# Fixed values for inputs that select a path (random ones would take none).
INPUTS = {"silero_vad": {"sr": [16000]}}


def run_one(path, shapes, inputs=None) -> dict:
    """inspect + prune at 0.3: a row of counts; raises only if something is wrong."""
    start = time.perf_counter()
    try:
        analysis = analyze(path, shapes=shapes, inputs=inputs)
    except OnnxpruneError as exc:
        return {"status": "declined", "reason": str(exc).splitlines()[0][:160]}
    groups = analysis.groups
    row = {"groups": len(groups), "prunable": sum(g.prunable for g in groups),
           "blocked": sum(bool(g.blocked_by) for g in groups)}
    try:
        result = prune(path, ratio=0.3, shapes=shapes, inputs=inputs)
    except OnnxpruneError as exc:
        return {**row, "status": "declined", "reason": str(exc).splitlines()[0][:160]}
    assert result.verify is not None
    if not result.verify.passed and "cannot run the reference (original)" in result.verify.message:
        return {**row, "status": "declined", "reason": result.verify.message[:160]}  # nothing is written
    assert result.verify.passed, result.verify.message  # never a wrong model
    row.update(status="verified", params_before=result.before["params"], params_after=result.after["params"],
               max_abs_diff=result.verify.max_abs_diff, seconds=round(time.perf_counter() - start, 2))
    return row


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_real_model_inspect_and_prune(real_model, name):
    row = run_one(real_model(name), SHAPES[name], INPUTS.get(name))
    print(name, row)
    tally.record("real models (inspect + prune --ratio 0.3)", row["status"])
    if row["status"] == "declined":  # a clean decline must say why
        assert row["reason"]


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "models"))
    from fetch import fetch

    rows = {name: run_one(fetch(name), shapes, INPUTS.get(name)) for name, shapes in SHAPES.items()}
    for name, row in rows.items():
        print(name, row)
    out = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "real_corpus.json"
    out.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
