"""taylor/fisher are external criteria: prune/ scores nothing itself (no torch below recover/), it
takes the scores by group name (PruneConfig.scores), checks they fit, and reports the criterion."""

from pathlib import Path

import numpy as np
import onnx
import pytest

from onnxprune.analysis import analyze_model
from onnxprune.api import PruneConfig, prune
from onnxprune.errors import UsageError
from onnxprune.prune import criteria
from onnxprune.prune.plan import group_names

MODEL = Path(__file__).resolve().parents[2] / "models" / "zoo" / "kws_dscnn.onnx"


def feeds(model, n=4):
    rng = np.random.default_rng(0)
    return [{"logmel": rng.standard_normal((1, 1, 49, 40)).astype(np.float32)} for _ in range(n)]


def test_registry_marks_gradient_criteria_external():
    assert {"taylor", "fisher"} <= set(criteria.NAMES)
    assert criteria.get("taylor").external and criteria.get("fisher").needs_data
    assert not any(criteria.get(n).external for n in criteria.BUILTIN)


def test_given_scores_rank_the_channels():
    model = onnx.load(MODEL)
    analysis = analyze_model(model)
    names = group_names(analysis)
    scores = {names[g.id]: np.arange(g.size, dtype=float) for g in analysis.groups if g.prunable}  # keep the last
    result = prune(model, config=PruneConfig(ratio=0.5, criterion="taylor", scores=scores, calibration=feeds(model)))
    assert result.verify.passed
    for g in analysis.groups:
        if g.prunable:
            assert result.plan.groups[names[g.id]] == list(range(g.size - len(result.plan.groups[names[g.id]]), g.size))
    assert result.report()["config"]["criterion"] == "taylor"
    assert {g["criterion"] for g in result.groups if g["prunable"]} == {"taylor"}


def test_missing_or_misfit_scores_are_usage_errors():
    model = onnx.load(MODEL)
    with pytest.raises(UsageError, match="recover extra"):
        prune(model, config=PruneConfig(ratio=0.5, criterion="fisher", calibration=feeds(model)))
    analysis = analyze_model(model)
    names = group_names(analysis)
    bad = {names[g.id]: np.ones(g.size + 1) for g in analysis.groups if g.prunable}
    with pytest.raises(UsageError, match="do not fit group"):
        prune(model, config=PruneConfig(ratio=0.5, criterion="fisher", scores=bad, calibration=feeds(model)))
