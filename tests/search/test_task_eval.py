"""auto's task evaluator: the bench task metric in points (higher is better), from one run."""

import numpy as np
import onnx
from onnx import numpy_helper

from onnxprune.bench.tasks import TaskConfig
from onnxprune.data import DataConfig, load_examples
from onnxprune.demo import bundled
from onnxprune.core.io import load_model
from onnxprune.search.task_eval import TaskEvaluator


def _evaluator():
    model = load_model(bundled("kws.onnx"))
    data = DataConfig(str(bundled("eval/manifest.jsonl")), frontend=str(bundled("logmel.onnx")), limit=36)
    examples = list(load_examples(model, data))
    return model, TaskEvaluator(model, examples, TaskConfig("classify", labels_file=str(bundled("labels.json"))))


def test_original_scores_its_accuracy_in_points_and_perfect_fidelity():
    model, evaluate = _evaluator()
    m = evaluate(model)
    assert m["task"] == 100.0 * m["task_accuracy"] and m["task_accuracy"] > 0.8
    assert m["top1_agreement"] == 100.0 and m["snr_db"] == float("inf")
    assert evaluate.passes == 2 * 36  # the reference pass, then one pass per evaluated model


def test_a_broken_classifier_loses_points():
    model, evaluate = _evaluator()
    broken = onnx.ModelProto()
    broken.CopyFrom(model)
    gemm = next(n for n in broken.graph.node if n.op_type == "Gemm")
    w = next(t for t in broken.graph.initializer if t.name == gemm.input[1])
    w.CopyFrom(numpy_helper.from_array(np.zeros_like(numpy_helper.to_array(w)), w.name))
    assert evaluate(broken)["task"] < evaluate(model)["task"] - 20
