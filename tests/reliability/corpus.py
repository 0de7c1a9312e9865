"""Run every ONNX backend test case through onnxprune and classify the outcome.

The onnx wheel rebuilds its ~1,900 operator ("node") cases offline and ships the `simple`,
`pytorch-converted`, `pytorch-operator` and `real` sets (the `light` folder holds the weight-free
versions of `real`). For each case: analyze, then prune at ratio 0 (and 0.3 where there is a
prunable group). Only a clean OnnxpruneError may stop us; where onnxruntime reproduces the stored
outputs, the rewritten model must give bit-identical outputs.

    python tests/reliability/corpus.py            # print the counts
    python tests/reliability/corpus.py --write    # regenerate node_cases_expected.json
    python tests/reliability/corpus.py light      # just some kinds
"""

from __future__ import annotations

import glob
import json
import os
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from onnxprune.api import analyze, prune
from onnxprune.errors import OnnxpruneError
from onnxprune.core.io import clamp_ir_version
from onnxprune.core.runtime import make_session, random_feeds

HERE = Path(__file__).resolve().parent
EXPECTED = HERE / "node_cases_expected.json"
KINDS = ("node", "simple", "pytorch-converted", "pytorch-operator", "light")
ort.set_default_logger_severity(4)  # ORT logs every model it refuses; the status says it once


def versions() -> dict:
    return {"onnx": onnx.__version__, "onnxruntime": ort.__version__}


def reason_class(exc: BaseException) -> str:
    """A short, stable class for a decline message: names, numbers and quotes removed."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    text = re.sub(r"'[^']*'|\"[^\"]*\"|\([^)]*\)|\[[^\]]*\]", "", text)
    text = re.sub(r"^\S+\.onnx:\s*", "", text).split(":")[0]
    text = re.sub(r"[-\d.e]*\d[\d.e,]*", "N", text)
    words = re.findall(r"[A-Za-z]+", text)[:6]
    return type(exc).__name__ + ":" + "-".join(w.lower() for w in words)


def _load_pb(path: str):
    tensor = onnx.TensorProto()
    tensor.ParseFromString(Path(path).read_bytes())
    return onnx.numpy_helper.to_array(tensor)


def load_case(case) -> tuple[onnx.ModelProto | None, list]:
    """The model and its (inputs, outputs) data sets; (None, []) if the files are absent."""
    if case.model is not None:
        return case.model, list(case.data_sets or [])
    if case.model_dir is None:
        return None, []
    model = onnx.load(os.path.join(case.model_dir, "model.onnx"))
    sets = []
    for d in sorted(glob.glob(os.path.join(case.model_dir, "test_data_set_*"))):
        try:
            ins = [_load_pb(p) for p in sorted(glob.glob(os.path.join(d, "input_*.pb")))]
            outs = [_load_pb(p) for p in sorted(glob.glob(os.path.join(d, "output_*.pb")))]
        except Exception:  # sequences/optionals: no stored tensor data we can read
            continue
        sets.append((ins, outs))
    return model, sets


def cases(kinds=KINDS):
    from onnx.backend.test.loader import load_model_tests

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for kind in kinds:
            if kind == "light":  # `real` cases name these weight-free files; no inputs are stored
                yield from _light_cases()
                continue
            for case in load_model_tests(kind=kind):
                yield f"{kind}/{case.name}", case


def _light_cases():
    from types import SimpleNamespace

    folder = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
    for path in sorted(folder.glob("light_*.onnx")):
        yield f"light/{path.stem}", SimpleNamespace(model=onnx.load(str(path)), data_sets=[], model_dir=None,
                                                    rtol=1e-3, atol=1e-7)


def _run(model: onnx.ModelProto, inputs: list):
    model = onnx.ModelProto.FromString(model.SerializeToString())
    clamp_ir_version(model)
    sess = make_session(model)
    names = [i.name for i in sess.get_inputs()]
    inputs = [np.asarray(x) if isinstance(x, np.generic) else x for x in inputs]
    return sess.run(None, dict(zip(names, inputs)))


def _close(got, want, rtol, atol) -> bool:
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return False
    if got.dtype.kind in "fc" and want.dtype.kind in "fc":
        return bool(np.allclose(got.astype(np.complex128 if got.dtype.kind == "c" else np.float64),
                                want.astype(np.complex128 if want.dtype.kind == "c" else np.float64),
                                rtol=rtol, atol=atol, equal_nan=True))
    return bool(np.array_equal(got, want))


def _identical(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind in "fc":
        return a.tobytes() == b.tobytes() or bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.array_equal(a, b))


def check_case(case, prune_ratio: float = 0.3) -> str:
    """One case's status: passed | declined:<class> | ort-cannot-run | ort-mismatch | no-model,
    with `+r0.3:verified` / `+r0.3:declined:<class>` when a group was prunable. `failed:...`
    means a bug: a non-onnxprune exception or a rewrite that changed an output."""
    model, data_sets = load_case(case)
    if model is None:
        return "no-model"
    try:
        analysis = analyze(model)
        result = prune(model, ratio=0.0, verify=False)
    except OnnxpruneError as exc:
        return "declined:" + reason_class(exc)
    except Exception as exc:  # noqa: BLE001 - this is exactly what we are looking for
        return f"failed:crash:{type(exc).__name__}"
    status = _compare(model, result.model, data_sets, case.rtol, case.atol)
    if any(g.prunable for g in analysis.groups):
        status += "+r0.3:" + _prune_more(model, prune_ratio)
    return status


def _compare(model, rewritten, data_sets, rtol, atol) -> str:
    if not data_sets:  # nothing stored: seeded inputs, and ORT's own outputs as the truth
        try:
            sess = make_session(model)
            data_sets = [(list(random_feeds(sess, {}, seed=0).values()), None)]
        except Exception:
            return "ort-cannot-run"
    for inputs, outputs in data_sets:
        try:
            want = _run(model, inputs)
        except Exception:
            return "ort-cannot-run"
        if outputs is not None and not all(_close(g, w, rtol, atol) for g, w in zip(want, outputs)):
            return "ort-mismatch"
        try:
            got = _run(rewritten, inputs)
        except Exception as exc:
            return f"failed:rewritten-cannot-run:{type(exc).__name__}"
        if len(got) != len(want) or not all(_identical(g, w) for g, w in zip(got, want)):
            return "failed:outputs-differ"
    return "passed"


def _prune_more(model, ratio) -> str:
    try:
        result = prune(model, ratio=ratio, round_to=1)
    except OnnxpruneError as exc:
        return "declined:" + reason_class(exc)
    except Exception as exc:  # noqa: BLE001
        return f"failed:crash:{type(exc).__name__}"
    if result.verify is None or not result.verify.passed:
        return "failed:not-verified"
    return "verified"


def run_all(kinds=KINDS, progress=False) -> dict[str, str]:
    out = {}
    for i, (name, case) in enumerate(cases(kinds)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[name] = check_case(case)
        if progress and i % 200 == 0:
            print(i, name, out[name], file=sys.stderr, flush=True)
    return out


def summary(statuses: dict[str, str]) -> dict[str, int]:
    """Counts per outcome class (`declined:...` reasons folded into `declined`), ratio-0.3 runs apart."""
    counts: dict[str, int] = {}
    for status in statuses.values():
        for n, part in enumerate(status.split("+")):
            key = ("r0.3 " if n else "") + part.removeprefix("r0.3:").split(":")[0]
            counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def main(argv: list[str]) -> int:
    kinds = [a for a in argv if not a.startswith("--")] or KINDS
    statuses = run_all(kinds, progress=True)
    counts = summary(statuses)
    print(json.dumps(counts, indent=1))
    if "--write" in argv:
        if EXPECTED.exists():  # regenerating some kinds keeps the others
            statuses = {**json.loads(EXPECTED.read_text())["cases"], **statuses}
            counts = summary(statuses)
        EXPECTED.write_text(json.dumps({"versions": versions(), "counts": counts, "cases": statuses},
                                       indent=0, sort_keys=True) + "\n")
        print(f"wrote {EXPECTED}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
