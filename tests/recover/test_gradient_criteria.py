"""Label-free Taylor / Fisher scores: a channel that carries nothing (its conv rows and bias are
zero) scores exactly 0, live channels do not, and a plan from them replays through prune."""


import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from onnxprune.recover import available

if not available():
    pytest.skip("needs the recover extra (torch, onnx2torch)", allow_module_level=True)

from onnxprune.analysis import analyze_model  # noqa: E402
from onnxprune.api import PruneConfig, prune  # noqa: E402
from onnxprune.recover.criteria import gradient_plan, gradient_scores  # noqa: E402
from zoo_kws import ZOO, kws_feeds  # noqa: E402


@pytest.fixture(scope="module")
def kws():
    model = onnx.load(ZOO / "kws_dscnn.onnx")
    feeds = kws_feeds(model, "calib", 8)
    return model, feeds


@pytest.mark.parametrize("kind", ["taylor", "fisher"])
def test_dead_channels_score_zero(kws, kind):
    model, feeds = kws
    analysis = analyze_model(model)
    group = next(g for g in analysis.groups if g.prunable and len(g.sources) == 1
                 and g.sources[0].node.op_type == "Conv" and len(g.sources[0].node.input) == 3)
    conv = group.sources[0].node
    dead = [1, 5]
    inits = {t.name: t for t in model.graph.initializer}
    for name in conv.input[1:]:
        value = numpy_helper.to_array(inits[name]).copy()
        value[dead] = 0
        inits[name].CopyFrom(numpy_helper.from_array(value, name))
    analysis = analyze_model(model)
    scores = gradient_scores(analysis, feeds, kind)[group.id]
    roots = analysis.atoms.roots(group.sources[0].atoms).tolist()
    position = {c: i for i, c in enumerate(next(g for g in analysis.groups if g.id == group.id).classes)}
    dead_pos = [position[roots[c]] for c in dead]
    assert np.all(scores[dead_pos] == 0)
    live = np.delete(scores, dead_pos)
    assert np.all(np.isfinite(scores)) and (live > 0).mean() > 0.9


def test_gradient_plan_replays_through_prune(kws):
    model, feeds = kws
    plan = gradient_plan(model, feeds, ratio=0.5, kind="fisher")
    result = prune(model, config=PruneConfig(plan=plan, compensate="lstsq", calibration=feeds))
    assert result.verify.passed and result.after["macs"] < 0.5 * result.before["macs"]
    assert plan.meta["criterion"] == "fisher"
