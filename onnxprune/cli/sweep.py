"""`onnxprune sweep MODEL --ratios ...`: prune at each ratio, benchmark all against the original,
write JSON, a markdown table and a PNG plot of quality vs latency and vs MACs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from ..api import PruneConfig
from ..bench.report import jsonable, sweep_markdown, sweep_rows
from ..bench.sweep import FIDELITY_QUALITY, parse_ratios, run_sweep
from ..calibration.compensate import METHODS
from ..data import split_examples
from ..errors import UsageError
from ..core.io import load_model
from ..prune import criteria
from .calibration import calibration_feeds
from .bench import bench_config, command_line, session_options, task_options
from .common import run_command, table, verbose_option, write_json
from .data_options import data_options
from .ray_options import device_timer, executor_for, on_option, ray_option
from .recover import check_criterion, check_recover, gradient_scores_for, print_recovery, with_recover_options

# Prune options forwarded to PruneConfig: each option's destination name is a PruneConfig field,
# so a new pruning option (e.g. --compensate) is one more line here and nothing else.
PRUNE_OPTIONS = [
    click.option("--criterion", type=click.Choice(criteria.NAMES), default="l1", show_default=True,
                 help="activation/reconstruction calibrate on --data (its non-held-out side with --holdout); "
                      "taylor/fisher rank by gradients there (need onnxprune[recover])."),
    click.option("--compensate", type=click.Choice(METHODS), default="none", show_default=True,
                 help="Repair consumers of removed channels from calibration data (as prune --compensate)."),
    click.option("--round-to", type=int, default=4, show_default=True, help="Keep a multiple of N channels per group."),
    click.option("--exclude", multiple=True, metavar="NAME", help="Node or initializer to leave alone (repeatable)."),
    click.option("--global", "global_ranking", is_flag=True, help="Rank channels across groups."),
    click.option("--allow-io-change", is_flag=True, help="Let groups that reach graph inputs/outputs be pruned."),
    click.option("--atol", type=float, default=1e-5, show_default=True, help="Verification tolerance."),
    click.option("--rtol", type=float, default=1e-4, show_default=True, help="Verification tolerance."),
]
_PRUNE_FIELDS = {f.name for f in dataclasses.fields(PruneConfig)}


def prune_options(f):
    for opt in reversed(PRUNE_OPTIONS):
        f = opt(f)
    return f


def prune_config(kw: dict) -> PruneConfig:
    """PruneConfig from every option named after one of its fields (pops them from `kw`)."""
    values = {k: kw.pop(k) for k in list(kw) if k in _PRUNE_FIELDS and k not in ("shapes", "seed")}
    if "exclude" in values:
        values["exclude"] = tuple(values["exclude"])
    return PruneConfig(shapes=tuple(kw["shapes"]), seed=kw["seed"], **values)


@click.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--ratios", default="0,0.25,0.5,0.75", show_default=True, help="Comma-separated pruning ratios.")
@prune_options
@session_options
@data_options("both")
@task_options
@click.option("--quality", type=click.Choice(list(FIDELITY_QUALITY)), default="top1", show_default=True,
              help="Fidelity metric plotted when there is no --task.")
@click.option("--fidelity-inputs", type=int, default=32, show_default=True, help="Seeded inputs for fidelity without --data.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="onnxprune-sweep", show_default=True)
@with_recover_options
@ray_option
@on_option
@verbose_option
@run_command("sweep")
def sweep(model, ratios, data, split, quality, fidelity_inputs, out_dir, verbose, ray_address, on, recover, recover_time,
          recover_max_steps, **kw):
    """Prune MODEL at each ratio (verified), benchmark every result against it, plot the trade-off."""
    ratio_list = parse_ratios(ratios)
    if kw.get("round_to", 1) < 1:
        raise UsageError(f"--round-to {kw['round_to']} must be at least 1")
    pcfg = prune_config(kw)
    check_recover(recover, data, recover_time, recover_max_steps)
    check_criterion(pcfg.criterion)
    if recover and (ray_address or on):
        raise UsageError("sweep --recover runs here: drop --ray/--on")
    calib_data, eval_data = split_examples(data) if data is not None and split else (data, data)
    original = load_model(model)
    feeds = None
    if pcfg.needs_data or recover:
        feeds = list(calibration_feeds(original, calib_data, pcfg.shapes, pcfg.criterion, pcfg.compensate,
                                       recover=recover))  # read once, used at every ratio
        if pcfg.needs_data:
            pcfg = dataclasses.replace(pcfg, calibration=feeds, scores=gradient_scores_for(original, pcfg, feeds))
        if not split:
            click.echo("note: calibrating and evaluating on the same files; --holdout 0.2 keeps them apart")
    bcfg = dataclasses.replace(bench_config(kw, eval_data), fidelity_inputs=fidelity_inputs)
    bcfg.check()
    executor = executor_for(ray_address, needed=on is not None)
    timer = device_timer(executor, on, bcfg.provider) if on else None
    twin = None
    if recover:
        from .recover import recover_result

        def twin(result):
            rec = recover_result(original, result, feeds, seconds=recover_time, seed=pcfg.seed,
                                 max_steps=recover_max_steps)
            print_recovery(rec, prefix=f"recover r={result.config.ratio:g}")
            return rec.model, rec.report()

    result = run_sweep(model, ratio_list, pcfg, bcfg, out_dir, fidelity_key=quality, executor=executor, timer=timer,
                       recover=twin)
    from ..bench.plot import plot_sweep

    out = Path(out_dir)
    write_json(str(out / "sweep.json"), jsonable({**result, "command": command_line()}))
    (out / "sweep.md").write_text(sweep_markdown(result, command_line()))
    plot_sweep(result, str(out / "sweep.png"))
    click.echo(table(*sweep_rows(result)))
    for f in result["failed"]:
        click.echo(f"ratio {f['ratio']:g}: verification FAILED, skipped ({f['message']})")
    click.echo(f"wrote {out}/sweep.json, sweep.md, sweep.png and the pruned models")
    return "FAILED" if result["failed"] else "PASSED"
