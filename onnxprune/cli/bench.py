"""`onnxprune bench MODEL [MODEL ...]`: latency, memory, size, MACs, fidelity and task metrics."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from ..bench.evaluate import BenchConfig, run_bench
from ..bench.providers import OPT_LEVELS
from ..bench.report import jsonable, markdown, terminal
from ..bench.tasks import TASKS, TaskConfig
from .common import run_command, shape_option, verbose_option, write_json, write_text
from .data_options import data_options
from .ray_options import device_timer, executor_for, on_option, ray_option


def session_options(f):
    """Options shared by bench and sweep: EP, threads, optimisation level, timing."""
    opts = [
        click.option("--provider", default="cpu", show_default=True,
                     help="Execution provider: cpu, cuda, tensorrt, openvino, ... or a full onnxruntime EP name."),
        click.option("--threads", type=int, default=0, show_default=True, help="Intra-op threads (0: all cores)."),
        click.option("--inter-threads", type=int, default=0, show_default=True,
                     help="Inter-op threads (>0 selects the parallel executor)."),
        click.option("--no-spin", is_flag=True,
                     help="Idle intra-op workers sleep instead of spinning (fairer A/B with --threads > 1 on few cores)."),
        click.option("--opt-level", type=click.Choice(OPT_LEVELS), default="all", show_default=True),
        click.option("--warmup", type=int, default=10, show_default=True, help="Untimed runs per model."),
        click.option("--runs", type=int, default=100, show_default=True, help="Timed runs per model."),
        click.option("--duration", type=float, help="Time for this many seconds instead of --runs."),
        shape_option,
        click.option("--seed", type=int, default=0, show_default=True, help="Seed of the synthetic inputs."),
        click.option("--no-memory", is_flag=True, help="Skip the peak-memory subprocess per model."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def task_options(f):
    opts = [
        click.option("--task", type=click.Choice(TASKS), help="Task metrics on --data (labels/transcripts needed)."),
        click.option("--labels", "labels_file", type=click.Path(dir_okay=False), help="classify: class names, one per line."),
        click.option("--positive", help="wakeword: the label of positive clips."),
        click.option("--threshold", type=float, default=0.5, show_default=True, help="wakeword/vad decision threshold."),
        click.option("--segments", type=click.Path(dir_okay=False), help="vad: reference speech segments (RTTM or JSONL)."),
        click.option("--frame-hop", type=float, default=0.01, show_default=True, help="vad: seconds between scored frames."),
        click.option("--vocab", type=click.Path(dir_okay=False), help="ctc: tokens, one per line, in output order."),
        click.option("--blank", type=int, default=0, show_default=True, help="ctc: index of the blank token."),
        click.option("--clip-seconds", type=float, help="Duration of each example when the data does not say."),
        click.option("--output", "output_name", help="Model output used for metrics and fidelity (default: the first)."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def bench_config(kw: dict, data) -> BenchConfig:
    """BenchConfig from the options above (pops them from `kw`)."""
    task = None
    if kw.get("task"):
        task = TaskConfig(task=kw["task"], labels_file=kw["labels_file"], positive=kw["positive"],
                          threshold=kw["threshold"], segments=kw["segments"], frame_hop=kw["frame_hop"],
                          vocab=kw["vocab"], blank=kw["blank"], clip_seconds=kw["clip_seconds"])
    return BenchConfig(provider=kw["provider"], threads=kw["threads"], inter_threads=kw["inter_threads"],
                       opt_level=kw["opt_level"], warmup=kw["warmup"], runs=kw["runs"], duration=kw["duration"],
                       shapes=tuple(kw["shapes"]), seed=kw["seed"], data=data, task=task, output=kw["output_name"],
                       memory=not kw["no_memory"], spin=not kw["no_spin"])


def _profile(models, cfg: BenchConfig) -> dict:
    """Per-op-type kernel time of every model (seeded inputs at the benchmarked shapes), printed as a table."""
    from ..bench.profile import op_type_profiles, profile_table
    from ..bench.providers import resolve_provider
    from ..core.graph import GraphIndex
    from ..core.io import load_model
    from ..core.runtime import make_session, random_feeds
    from ..core.shapes import input_shapes, parse_shape_specs
    from .common import table

    overrides = cfg.shapes if isinstance(cfg.shapes, dict) else parse_shape_specs(cfg.shapes or ())
    feeds = [random_feeds(make_session(m), input_shapes(GraphIndex.build(load_model(m)), overrides), cfg.seed)
             for m in models]
    threads = cfg.threads or 1
    found = op_type_profiles(list(models), feeds, runs=cfg.runs, provider=resolve_provider(cfg.provider),
                             threads=threads)
    names = [Path(m).name for m in models]
    headers, rows = profile_table(names, found)
    click.echo(f"\ntime per op type (onnxruntime profiler, {threads} thread(s), {cfg.runs} interleaved runs, "
               "median µs per run; profiling slows kernels, so compare, do not add up to the latency above):")
    click.echo(table(rows, headers))
    return {"threads": threads, "models": dict(zip(names, found))}


def io_dims(path: str) -> dict:
    """Graph input/output name -> its dims (None where symbolic)."""
    from ..core.io import load_model

    graph = load_model(path).graph
    return {v.name: [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
            for v in list(graph.input) + list(graph.output)}


def resized_from_reports(models: list[str], reports: list[str]) -> tuple:
    """Per model, the resized_io of the one --report whose resized inputs/outputs it has at the new
    sizes (and the first model at the old ones), else None; a report no model fits, or a model two
    reports fit, is a one-line error."""
    import json

    from ..errors import UsageError

    found = []
    for r in reports:
        try:
            resized = json.loads(Path(r).read_text()).get("resized_io")
        except (OSError, ValueError, AttributeError) as exc:
            raise UsageError(f"--report {r}: not a prune --report JSON ({exc})") from None
        if not resized:
            raise UsageError(f"--report {r}: its prune resized no graph input/output (no resized_io); not needed")
        found.append((r, resized))
    dims = [io_dims(m) for m in models]

    def fits(d: dict, resized: list, key: str) -> bool:
        return all(x["name"] in d and len(d[x["name"]]) > x["axis"] and d[x["name"]][x["axis"]] == x[key]
                   for x in resized)

    out = [None] * len(models)
    for r, resized in found:
        hits = [i for i in range(1, len(models)) if fits(dims[i], resized, "new")] if fits(dims[0], resized, "old") else []
        if not hits:
            sizes = ", ".join(f"{x['name']} {x['old']} -> {x['new']}" for x in resized)
            raise UsageError(f"--report {r}: no model here has its resized inputs/outputs at the sizes it gives "
                             f"({sizes}) with {Path(models[0]).name} at the old ones")
        for i in hits:
            if out[i] is not None and out[i] != resized:
                raise UsageError(f"--report: two reports fit {Path(models[i]).name}; bench it with one")
            out[i] = resized
    return tuple(out)


def command_line() -> str:
    return "onnxprune " + " ".join(shlex.quote(a) for a in sys.argv[1:])


@click.command()
@click.argument("models", nargs=-1, required=True, type=click.Path(dir_okay=False))
@session_options
@data_options("eval")
@task_options
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write every figure as JSON.")
@click.option("--markdown", "md_path", type=click.Path(dir_okay=False), help="Write the tables as markdown.")
@click.option("--report", "reports", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="prune --report of a model here whose state --allow-io-change resized: fidelity feeds it the "
                   "kept state units (repeatable; matched by the resized sizes).")
@click.option("--profile", is_flag=True, help="Also print time per op type (onnxruntime's profiler), every model "
                                              "against the first: which ops did not shrink.")
@ray_option
@on_option
@verbose_option
@run_command("bench")
def bench(models, data, json_path, md_path, verbose, ray_address, on, profile, reports, **kw):
    """Time MODELS interleaved on one execution provider; every ratio is relative to the first."""
    for path in (json_path, md_path):
        if path and Path(path).resolve() in {Path(m).resolve() for m in models}:
            from ..errors import UsageError
            raise UsageError(f"{path} is one of the models; choose another output file")
    cfg = bench_config(kw, data)
    if reports:
        import dataclasses

        cfg = dataclasses.replace(cfg, resized=resized_from_reports(list(models), list(reports)))
    timer = None
    if ray_address is not None or on is not None:  # the timing runs on a worker (the one holding --on)
        timer = device_timer(executor_for(ray_address, needed=True), on, cfg.provider)
    result = run_bench(list(models), cfg, timer=timer)
    click.echo(terminal(result))
    if profile:
        result["profile"] = _profile(models, cfg)
    if json_path:
        write_json(json_path, jsonable({**result, "command": command_line()}))
    if md_path:
        write_text(md_path, markdown(result, command_line()))
