"""`onnxprune batch FOLDER|MANIFEST`: inspect, prune, verify and bench every model; one table and
one JSON for all (here, or in parallel on Ray with --ray)."""

from __future__ import annotations

import click

from ..bench.batch import BatchConfig, read_items, run_batch
from ..errors import UsageError
from ..prune import criteria
from .bench import command_line
from .common import human, run_command, table, verbose_option, write_json
from .ray_options import executor_for, ray_option


@click.command()
@click.argument("source", type=click.Path(exists=False))
@click.option("--ratio", type=float, default=0.5, show_default=True, help="Fraction of each group's channels to remove.")
@click.option("--criterion", type=click.Choice([c for c in criteria.NAMES if not criteria.needs_data(c)]), default="l1", show_default=True)
@click.option("--round-to", type=int, default=4, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--runs", type=int, default=50, show_default=True, help="Timed runs per model (original vs pruned, interleaved).")
@click.option("--warmup", type=int, default=5, show_default=True)
@click.option("--threads", type=int, default=1, show_default=True, help="Intra-op threads while timing.")
@click.option("--no-bench", is_flag=True, help="Inspect, prune and verify only.")
@click.option("--no-verify", is_flag=True, help="Skip the reference comparison (not recommended).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Write each verified pruned model here.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write every row as JSON.")
@ray_option
@verbose_option
@run_command("batch")
def batch(source, ratio, criterion, round_to, seed, runs, warmup, threads, no_bench, no_verify, out_dir, json_path,
          ray_address, verbose):
    """Inspect, prune, verify and benchmark every model of SOURCE: a folder of .onnx files or a
    manifest (.json/.jsonl of {"path", "shape", "input"}). A model that fails is its own row."""
    if not 0.0 <= ratio < 1.0:
        raise UsageError(f"--ratio {ratio} is out of range: use 0 <= ratio < 1")
    for flag, value in (("--round-to", round_to), ("--runs", runs)):
        if value < 1:
            raise UsageError(f"{flag} {value} must be at least 1")
    items = read_items(source)
    cfg = BatchConfig(ratio=ratio, criterion=criterion, round_to=round_to, seed=seed, verify=not no_verify,
                      bench=not no_bench, runs=runs, warmup=warmup, threads=threads)
    from ..core.executor import LocalExecutor
    from .progress import Progress

    executor = executor_for(ray_address) or LocalExecutor(progress=Progress())
    result = run_batch(items, cfg, executor=executor, out_dir=out_dir)
    click.echo(table([_row(r) for r in result["models"]],
                     ["model", "groups", "params", "MACs", "verify", "p50 ms", "speedup", "status", "s", "ran on"]))
    click.echo("counts: " + ", ".join(f"{k} {v}" for k, v in sorted(result["counts"].items())))
    if json_path:
        write_json(json_path, {**result, "command": command_line()})
    return "FAILED" if result["counts"].get("failed") else "PASSED"


def _row(r: dict) -> list:
    b = r.get("bench") or {}
    v = r.get("verify") or {}
    where = r.get("where") or {}
    status = r["status"] + (f": {r['reason'][:60]}" if r.get("reason") else "") + \
        (f"; bench: {b['error'][:40]}" if "error" in b else "")
    return [r["name"], f"{r['prunable']}/{r['groups']}" if "groups" in r else "",
            f"{human(r['params'])} -> {human(r['params_after'])}" if "params_after" in r else "",
            f"{100 * r['macs_after'] / r['macs']:.0f}%" if r.get("macs") and "macs_after" in r else "",
            f"{v['max_abs_diff']:.2g}" if v.get("passed") else ("FAILED" if v else ""),
            f"{b['p50_ms']:.3f} -> {b['p50_ms_pruned']:.3f}" if "p50_ms" in b else "",
            f"{b['speedup']:.2f}x" if "speedup" in b else "", status, r.get("seconds", ""),
            f"{where.get('hostname', '')}:{where.get('pid', '')}"]
