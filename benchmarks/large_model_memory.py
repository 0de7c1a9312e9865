"""Peak memory and wall time of `inspect` and `prune --ratio 0.3` on external-data models of
growing size (tests/reliability/large.py: three Gemms, two of them H x H).

Needs: ~2.5x the largest model in free disk in the temp folder, and that much memory to spare.

    python benchmarks/large_model_memory.py [--hidden 4096 8192 16384] [--out benchmarks/results/large_model_memory.md]

Each command runs in a fresh child that reports its own VmHWM (peak RSS, file-backed pages of
mapped weights included) on exit. Needs ~2.5x the largest model in free disk in the temp folder.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, parser, write

sys.path.insert(0, str(REPO / "tests" / "reliability"))
import large  # noqa: E402

def measured(*args) -> tuple[float, float, str]:
    """(peak RSS in MB, wall seconds, last stdout line)."""
    start = time.perf_counter()
    res, peak = large.run_measured(*args)
    wall = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"{args[0]} failed: {res.stderr.strip().splitlines()[-3:]}")
    return peak, wall, res.stdout.strip().splitlines()[-1]


def main() -> None:
    ap = parser(__doc__, "large_model_memory.md")
    ap.add_argument("--hidden", type=int, nargs="+", default=[4096, 8192, 16384])
    args = ap.parse_args()
    rows = []
    for hidden in args.hidden:
        with tempfile.TemporaryDirectory(prefix="onnxprune-large-") as tmp:
            model = large.build(Path(tmp) / "in", hidden)
            weights_mb = (Path(tmp) / "in" / "large.onnx.data").stat().st_size / 2**20
            inspect_mb, inspect_s, _ = measured("inspect", model)
            prune_mb, prune_s, wrote = measured("prune", model, Path(tmp) / "pruned.onnx", "--ratio", "0.3")
            rows.append((hidden, weights_mb, inspect_mb, inspect_s, prune_mb, prune_s))
            print(f"H={hidden}: weights {weights_mb:.0f} MB, inspect {inspect_mb:.0f} MB {inspect_s:.1f} s, "
                  f"prune {prune_mb:.0f} MB ({prune_mb / weights_mb:.2f}x) {prune_s:.1f} s; {wrote}", flush=True)
    lines = ["| hidden | weights MB | inspect peak MB | inspect s | prune peak MB | prune peak / weights | prune s |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {h} | {w:.0f} | {im:.0f} | {i_s:.1f} | {pm:.0f} | {pm / w:.2f}x | {p_s:.1f} |"
              for h, w, im, i_s, pm, p_s in rows]
    write(args.out, "# Peak memory on external-data models\n\n"
                    "Peak RSS = VmHWM of the CLI process (mapped weight pages included).\n\n" + "\n".join(lines),
          [dict(zip(("hidden", "weights_mb", "inspect_mb", "inspect_s", "prune_mb", "prune_s"), r)) for r in rows])


if __name__ == "__main__":
    main()
