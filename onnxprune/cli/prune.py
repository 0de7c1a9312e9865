"""`onnxprune prune` and the summary lines every pruning command prints."""

from __future__ import annotations

from pathlib import Path

import click

from ..api import PruneConfig, check_verified, prune
from ..errors import UsageError
from ..core.io import check_output_path, load_model
from ..prune.plan import Plan
from ..calibration.compensate import METHODS
from ..prune import criteria
from ..core.shapes import parse_input_values
from .calibration import calibration_feeds
from .hints import with_hint
from . import checks, closeness, finish
from .common import (describe_written, gate_options, human, input_option, run_command, shape_option, table,
                     verbose_option, write_json, write_text)
from .data_options import data_options
from .depth import block_names, depth_options, parse_ranks, print_steps
from .recover import (check_criterion, check_recover, gradient_scores_for, rounds_option, run_recovery, run_rounds,
                      with_recover_options)


@click.command("prune")
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("output", type=click.Path(dir_okay=False))
@click.option("--ratio", type=float, default=0.5, show_default=True, help="Fraction of each group's channels to remove.")
@click.option("--criterion", type=click.Choice(criteria.NAMES),
              help="How channels are ranked [default: l1; reconstruction with --data]; activation/reconstruction "
                   "rank them on --data, taylor/fisher by label-free gradients on --data (needs onnxprune[recover]).")
@click.option("--compensate", type=click.Choice(METHODS), default="none", show_default=True,
              help="Fold removed channels' mean into biases (bias) or refit consumers (lstsq); needs --data.")
@click.option("--global", "global_ranking", is_flag=True, help="Rank channels across groups instead of a uniform ratio.")
@click.option("--allocate", type=click.Choice(["uniform", "sensitivity"]), default="uniform", show_default=True,
              help="sensitivity: per-group ratios with the MACs of a uniform --ratio, measured-sensitive groups pruned less.")
@click.option("--round-to", type=int, default=4, show_default=True,
              help="Keep a multiple of N channels per group (4: measured fastest on ORT CPU, see benchmarks/results/round_to.md).")
@click.option("--exclude", multiple=True, metavar="NAME", help="Node or initializer to leave alone (repeatable).")
@shape_option
@input_option
@click.option("--plan", "plan_path", type=click.Path(exists=True, dir_okay=False), help="Replay a saved plan.")
@click.option("--save-plan", type=click.Path(dir_okay=False), help="Write the kept channels as a JSON plan.")
@click.option("--report", type=click.Path(dir_okay=False), help="Write a JSON report.")
@click.option("--allow-io-change", is_flag=True, help="Let groups that reach graph inputs/outputs be pruned.")
@click.option("--atol", type=float, default=1e-5, show_default=True)
@click.option("--rtol", type=float, default=1e-4, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-verify", is_flag=True, help="Skip the reference comparison (not recommended).")
@click.option("--force", is_flag=True, help="Write the output even if verification fails.")
@gate_options
@with_recover_options
@rounds_option
@data_options("calib")
@depth_options
@finish.finish_options
@verbose_option
@run_command("prune")
def prune_cmd(model, output, ratio, criterion, compensate, global_ranking, allocate, round_to, exclude, shapes, inputs,
              plan_path, save_plan, report, allow_io_change, atol, rtol, seed, no_verify, force, min_snr, max_drop,
              recover, recover_time, recover_max_steps, recover_rounds, data, drop_blocks, low_rank, ranks,
              low_rank_method, block_repair, slim, optimize_for, verbose):
    """Prune MODEL and write OUTPUT (verified against the reference model by default), then say how
    close it is to the original."""
    closeness.check_gates(min_snr, max_drop)
    criterion = checks.default_criterion(criterion, data, compensate)
    if not 0.0 <= ratio < 1.0:
        raise UsageError(f"--ratio {ratio} is out of range: use 0 <= ratio < 1")
    if round_to < 1:
        raise UsageError(f"--round-to {round_to} must be at least 1")
    check_output_path(model, output)
    finish.check_available(slim)
    check_recover(recover, data, recover_time, recover_max_steps, recover_rounds)
    check_criterion(criterion)
    plan = Plan.from_json(Path(plan_path).read_text()) if plan_path else None
    if recover_rounds > 1 and (plan is not None or global_ranking or allocate != "uniform" or drop_blocks
                               or low_rank is not None or ranks or criteria.get(criterion).external):
        raise UsageError("--recover-rounds ranks and prunes uniform widths afresh each round: drop --plan/--global/"
                         "--allocate/--drop-blocks/--low-rank/--rank/--criterion taylor|fisher")
    onnx_model = load_model(model)
    if allocate == "sensitivity" and (drop_blocks or low_rank is not None or ranks):
        raise UsageError("--allocate sensitivity does not combine with --drop-blocks/--low-rank/--rank yet")
    if allocate == "sensitivity" and (global_ranking or plan is not None):
        raise UsageError("--allocate sensitivity chooses per-group widths itself: drop --global / --plan")
    checks.check_plan_options(plan)
    checks.check_exclude(onnx_model, exclude)
    shapes = checks.shapes_from_data(onnx_model, data, shapes)
    lowrank = low_rank is not None or bool(ranks) or bool(plan is not None and plan.ranks) or block_repair != "none" \
        or bool(plan is not None and plan.meta.get("block_repair", "none") != "none")  # these read --data as a list
    calibration = calibration_feeds(onnx_model, data, shapes, criterion, compensate, lowrank=lowrank, recover=recover)
    recover_feeds = calibration if recover else None  # a list: read once, used by calibration and recovery
    if recover and not lowrank and not criteria.needs_data(criterion, compensate):
        calibration = None
    scores = None
    if plan is None and criteria.get(criterion).external:
        calibration = list(calibration)
        scores = gradient_scores_for(onnx_model, PruneConfig(criterion=criterion, exclude=tuple(exclude), shapes=shapes,
                                                             seed=seed, allow_io_change=allow_io_change,
                                                             inputs=parse_input_values(inputs)), calibration)
    if allocate == "sensitivity":
        from ..search.auto import allocate_plan

        calibration = None if calibration is None else list(calibration)  # read twice: allocation, then prune
        plan = allocate_plan(onnx_model, PruneConfig(ratio=ratio, criterion=criterion, round_to=round_to,
                                                     exclude=tuple(exclude), shapes=shapes, seed=seed,
                                                     allow_io_change=allow_io_change, calibration=calibration,
                                                     compensate=compensate, scores=scores), data=data)
        if "macs_fraction" in plan.meta:
            click.echo(f"allocate: sensitivity-guided widths keep {plan.meta['macs_fraction']:.1%} of the MACs "
                       f"(uniform --ratio {ratio:g}: {plan.meta['uniform_macs_fraction']:.1%})")
    config = PruneConfig(ratio=ratio, criterion=criterion, global_ranking=global_ranking, round_to=round_to,
                         exclude=tuple(exclude), shapes=shapes, verify=not no_verify, atol=atol, rtol=rtol,
                         seed=seed, allow_io_change=allow_io_change, plan=plan, inputs=parse_input_values(inputs),
                         calibration=calibration, compensate=compensate, drop_blocks=block_names(drop_blocks),
                         low_rank=low_rank, ranks=parse_ranks(ranks), low_rank_method=low_rank_method, scores=scores,
                         block_repair=block_repair)
    extra = {}
    if recover_rounds > 1:
        result, extra["recover"] = run_rounds(onnx_model, config, recover_feeds, rounds=recover_rounds,
                                              seconds=recover_time, seed=seed, max_steps=recover_max_steps)
    else:
        result = prune(onnx_model, config=config)
    print_summary(result, Path(model).stat().st_size)
    print_steps(result, onnx_model)
    unchanged = checks.nothing_pruned(result, round_to=round_to, ratio=ratio, plan_given=plan is not None)
    checks.criterion_notes(result, criterion)
    if result.calibration_examples:
        print_compensation(result)
    if recover and recover_rounds == 1 and (force or result.verify is None or result.verify.passed):
        extra["recover"] = run_recovery(onnx_model, result, recover_feeds, seconds=recover_time, seed=seed,
                                        max_steps=recover_max_steps)
    if slim or optimize_for:  # checked against the pruned model; fidelity below is the written model's
        extra["finish"] = finish.apply(result, slim, optimize_for, atol=atol, rtol=rtol)
    fidelity = closeness.against_original(onnx_model, result.model, data=data, shapes=result.analysis.input_shapes,
                                          values=result.analysis.input_values, seed=seed,
                                          gated=min_snr is not None or max_drop is not None,
                                          resized=result.resized_io)
    closeness.gate(fidelity, min_snr=min_snr, max_drop=max_drop)
    if report:
        write_json(report, {**result.report(), **extra, "fidelity": fidelity})
    if save_plan:
        write_text(save_plan, result.plan.to_json())
    if not force:
        check_verified(result)
    closeness.report(fidelity, data_given=data is not None, criterion=criterion, compensate=compensate)
    click.echo(f"wrote {describe_written(result.save(output))}")
    closeness.closing(fidelity)
    if (result.verify is not None and not result.verify.passed) or \
            any(s["verify"] is not None and not s["verify"]["passed"] for s in result.steps):
        return "FAILED"
    return "UNCHANGED" if unchanged else "PASSED"


def print_compensation(result) -> None:
    c = result.config
    click.echo(f"data: criterion {c.criterion}, compensation {c.compensate}, "
               f"{result.calibration_examples} calibration examples")
    for row in result.compensation:
        err = (f"; calibration output error {row['error_none']:.3g} -> {row['error_after']:.3g}"
               if "error_after" in row else "")
        click.echo(f"  {row['node']} ({row['op']}): {row['inputs_removed']}/{row['inputs']} inputs removed, "
                   f"{row['method']}{err}" + (f" ({row['note']})" if row["note"] else ""))


def print_summary(result, file_size_before: int | None = None) -> None:
    b, a = result.before, result.after
    pct = lambda x, y: f"{100 * (y - x) / x:+.1f}%" if x else "n/a"  # noqa: E731
    rows = [["parameters", human(b["params"]), human(a["params"]), pct(b["params"], a["params"])],
            ["MACs", human(b["macs"]), human(a["macs"]), pct(b["macs"], a["macs"])],
            ["size (bytes)", human(b["bytes"]), human(a["bytes"]), pct(b["bytes"], a["bytes"])],
            ["nodes", sum(b["ops"].values()), sum(a["ops"].values()), ""]]
    click.echo(table(rows, ["", "before", "after", "change"]))
    changed = [layer for layer in result.layers if layer["channels_after"] != layer["channels_before"]]
    if changed:
        click.echo(table([[layer["node"], layer["op"], layer["channels_before"], layer["channels_after"]]
                          for layer in changed], ["layer", "op", "channels", "kept"]))
    for io in result.resized_io:
        click.echo(f"resized graph {io['kind']} '{io['name']}': axis {io['axis']} {io['old']} -> {io['new']} "
                   f"(update the caller's buffers)")
    groups = result.groups
    blocked = [g for g in groups if g["blocked_by"]]
    single = sum(1 for g in groups if not g["prunable"] and not g["blocked_by"])
    click.echo(f"groups: {sum(g['prunable'] for g in groups)} prunable, {len(blocked)} blocked"
               + (f", {single} single-channel" if single else "")
               + (f" (first: {blocked[0]['name']}: {with_hint(blocked[0]['blocked_by'][0])})" if blocked else ""))
    v = result.verify
    if v is None:
        click.echo("verify: skipped (--no-verify)")
    elif v.passed:
        paths = f"; {v.paths} If path(s) forced and checked" if v.paths else ""
        click.echo(f"verify: passed, max |pruned - reference| = {v.max_abs_diff:.3g} "
                   f"(atol {v.tolerance['atol']:g}, rtol {v.tolerance['rtol']:g}); checker {v.checker}; "
                   f"onnxruntime loads it{paths}")
    else:
        click.echo(f"verify: FAILED: {v.message}")
