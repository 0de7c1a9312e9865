"""Every ONNX backend test case through inspect and prune --ratio 0: no crash, and where onnxruntime
reproduces the stored outputs the rewritten model's outputs are bit-identical.

Statuses are pinned in node_cases_expected.json for the onnx/onnxruntime versions it names;
regenerate with `PYTHONPATH=. python tests/reliability/corpus.py --write` after an upgrade or a
deliberate change, and review the diff. The `node`, `simple` and `pytorch-*` kinds take about a
minute on the 2-core CI machine; the `light` models (vgg19 etc., 40 s) are marked slow.
"""

from __future__ import annotations

import json

import onnx
import pytest
from click.testing import CliRunner

import corpus
import tally
from onnxprune.cli.main import main as cli

EXPECTED = json.loads(corpus.EXPECTED.read_text())
FAST_KINDS = ("node", "simple", "pytorch-converted", "pytorch-operator")


def _check(kinds):
    if EXPECTED["versions"] != corpus.versions():
        pytest.skip(f"statuses pinned for {EXPECTED['versions']}, installed {corpus.versions()}: "
                    "regenerate with tests/reliability/corpus.py --write")
    got = corpus.run_all(kinds)
    want = {k: v for k, v in EXPECTED["cases"].items() if k.split("/")[0] in kinds}
    failed = sorted(f"{k}: {v}" for k, v in got.items() if "failed" in v)
    changed = sorted(f"{k}: expected {want.get(k, '(new case)')}, got {got.get(k, '(case gone)')}"
                     for k in set(got) | set(want) if got.get(k) != want.get(k))
    assert not failed, "crashes or changed outputs:\n" + "\n".join(failed)
    assert not changed, (f"{len(changed)} statuses changed (rerun corpus.py --write if intended):\n"
                         + "\n".join(changed[:60]))
    return got


def test_operator_cases_match_pinned_statuses():
    got = _check(FAST_KINDS)
    counts = corpus.summary(got)
    for status, n in counts.items():
        tally.record("onnx operator cases (inspect + prune --ratio 0, bit-identical)", status, n)
    assert counts.get("passed", 0) > 1000  # the corpus really ran, not an empty loader


@pytest.mark.slow
def test_light_models_match_pinned_statuses():
    _check(("light",))


def _sample(every: int = 150):
    for i, (name, case) in enumerate(corpus.cases(("node",))):
        if i % every == 0:
            yield name, case


@pytest.mark.parametrize("name,case", list(_sample()), ids=lambda x: x if isinstance(x, str) else "")
def test_cli_sample_exits_cleanly(name, case, tmp_path):
    """A sample through the real CLI: exit 0, or 1/2 with one `error:` line and no internal error."""
    model, _ = corpus.load_case(case)
    path = tmp_path / "case.onnx"
    onnx.save(model, str(path))
    runner = CliRunner()
    for args in (["inspect", str(path)], ["prune", str(path), str(tmp_path / "out.onnx"), "--ratio", "0"]):
        res = runner.invoke(cli, args)
        assert res.exit_code in (0, 1, 2), (name, args, res.output)
        assert "internal error" not in res.output and "Traceback" not in res.output, (name, res.output)
        if res.exit_code:
            assert [line for line in res.output.splitlines() if line.startswith("error:")], res.output
    assert (tmp_path / "out.onnx").exists() == (res.exit_code == 0), (name, res.output)
    assert sorted(p.name for p in tmp_path.iterdir()) in (["case.onnx"], ["case.onnx", "out.onnx"])
    if EXPECTED["cases"][name].startswith("declined"):
        assert res.exit_code in (1, 2), (name, res.output)
