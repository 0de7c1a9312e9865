"""`onnxprune auto MODEL OUTPUT --target-... --max-drop D`: budgeted automatic pruning."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from ..api import check_verified
from ..prune.pipeline import PruneConfig
from ..search.auto import AutoConfig, auto_prune, budget_noise, check_goal
from ..errors import UsageError
from ..core.io import check_output_path
from ..calibration.compensate import METHODS
from ..prune import criteria
from ..core.io import load_model
from ..search.head import HeadEvaluator
from . import checks, closeness
from .common import describe_written, run_command, shape_option, verbose_option, write_json, write_text
from .bench import task_options
from .data_options import data_options
from .ray_options import device_timer, executor_for, ray_option
from .depth import print_steps
from .recover import check_criterion, check_recover, gradient_scores_for, with_recover_options


def _goal(speedup, macs, params) -> tuple[str, float]:
    given = [(g, v) for g, v in (("speedup", speedup), ("macs", macs), ("params", params)) if v is not None]
    if len(given) != 1:
        raise UsageError("give exactly one goal: --target-speedup X, --target-macs F or --target-params F")
    check_goal(*given[0])
    return given[0]


def _task_evaluator(model, data, kw: dict, n_eval: int, shapes, head=None):
    """(evaluate, metric key, display name): the task metric on the held-out split with --task
    (through --head when given), the head pipeline's top-1 agreement with --head alone, else None
    and auto_prune's label-free fidelity."""
    from ..bench.tasks import TASK_QUALITY, TaskConfig
    from ..search.fidelity import held_out_examples, split_part
    from ..core.io import load_model

    if not kw.get("task") and head is None:
        return None, "top1_agreement", "top-1 agreement"
    if data is None:
        raise UsageError(f"--task {kw['task']} needs labelled --data" if kw.get("task") else
                         "--head scores the model through its downstream model on --data clips: pass --data")
    cfg = None
    if kw.get("task"):
        cfg = TaskConfig(task=kw["task"], labels_file=kw["labels_file"], positive=kw["positive"],
                         threshold=kw["threshold"], segments=kw["segments"], frame_hop=kw["frame_hop"],
                         vocab=kw["vocab"], blank=kw["blank"], clip_seconds=kw["clip_seconds"])
    original = load_model(model)  # clips keep their own length where the model's dims are symbolic
    if head is not None:
        from ..search.head import Head, HeadEvaluator, clips_of

        evaluator = HeadEvaluator(original, clips_of(split_part(original, data, 1), n_eval), Head(head), cfg)
        if cfg is None:
            return evaluator, "top1_agreement", f"top-1 agreement of {Path(head).name}"
        return evaluator, "task", f"{kw['task']} {TASK_QUALITY[kw['task']][0]} through {Path(head).name}"
    from ..search.task_eval import TaskEvaluator

    evaluator = TaskEvaluator(original, held_out_examples(original, data, count=n_eval, part=1), cfg)
    return evaluator, "task", f"{kw['task']} {TASK_QUALITY[kw['task']][0]}"


def _default_budget(model, max_drop, min_snr, metric_name: str) -> tuple[float | None, float | None, str]:
    """No budget given: the output kind decides (a classifier's decisions: top-1 agreement within
    1 point; an embedding or regression: SNR >= 20 dB, i.e. distortion at 1 % of the signal)."""
    if max_drop is not None or min_snr is not None:
        return max_drop, min_snr, ""
    if metric_name != "top-1 agreement":  # a task or head metric: judged on what it decides
        return 1.0, None, f"default for {metric_name}: drop <= 1 point"
    from ..search.fidelity import output_kinds
    from ..core.io import load_model

    kinds = output_kinds(load_model(model))
    first, kind = next(iter(kinds.items()))
    if kind == "classifier":
        return 1.0, None, f"default for classifier output '{first}': top-1 agreement drop <= 1 point"
    return None, 20.0, (f"default for non-classifier output '{first}' (embedding/regression, where top-1 of an "
                        f"argmax means nothing): SNR >= 20 dB; set --min-snr or --max-drop, or --head MODEL")


def _shown(metrics: dict, key: str) -> float:
    return abs(metrics[key]) if key == "task" else metrics[key]


@click.command("auto")
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("output", type=click.Path(dir_okay=False))
@click.option("--target-speedup", type=float, help="Goal: this many times faster, measured on --provider (e.g. 1.5).")
@click.option("--target-macs", type=float, help="Goal: keep at most this fraction of the MACs (0 < F < 1).")
@click.option("--target-params", type=float, help="Goal: keep at most this fraction of the parameters (0 < F < 1).")
@click.option("--max-drop", type=float,
              help="Budget: points the metric may fall (top-1 agreement with the original, %). Default: 1 point "
                   "for a classifier output or with --task/--head, else --min-snr 20.")
@click.option("--min-snr", type=float, help="Budget: output SNR vs the original must stay >= this many dB.")
@click.option("--criterion", type=click.Choice(criteria.NAMES),
              help="How channels are ranked [default: l1; reconstruction with --data; taylor/fisher need "
                   "onnxprune[recover]].")
@click.option("--compensate", type=click.Choice(METHODS), default="none", show_default=True,
              help="Repair each candidate's consumers from calibration data (as prune --compensate).")
@click.option("--round-to", type=int, default=4, show_default=True, help="Keep a multiple of N channels per group.")
@click.option("--exclude", multiple=True, metavar="NAME", help="Node or initializer to leave alone (repeatable).")
@shape_option
@click.option("--allow-io-change", is_flag=True, help="Let groups that reach graph inputs/outputs be pruned.")
@click.option("--provider", default="CPUExecutionProvider", show_default=True, help="ONNX Runtime EP to time on.")
@click.option("--threads", type=int, default=1, show_default=True, help="Intra-op threads when timing.")
@click.option("--runs", type=int, default=100, show_default=True, help="Timed runs per latency measurement.")
@click.option("--latency-model", type=click.Choice(["measured", "macs"]), default="measured", show_default=True,
              help="'macs': a deterministic MACs-proportional stand-in (no timing).")
@click.option("--calib", type=int, default=16, show_default=True, help="Calibration feeds for sensitivity.")
@click.option("--eval", "n_eval", type=int, default=32, show_default=True, help="Held-out feeds for the metric.")
@data_options("both", holdout_default=0.2)
@task_options
@click.option("--head", type=click.Path(exists=True, dir_okay=False), metavar="MODEL.onnx",
              help="Score through this downstream model (e.g. a wake-word head after an embedding model): the "
                   "budget and --task apply to its outputs per clip.")
@click.option("--max-evals", type=int, default=200, show_default=True, help="Stop after this many evaluations.")
@click.option("--time-limit", type=float, help="Stop the search after this many seconds.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--save-plan", type=click.Path(dir_okay=False), help="Write the chosen plan (replay with prune --plan).")
@click.option("--report", type=click.Path(dir_okay=False), help="Write the trajectory and result as JSON.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Write a PNG of metric vs MACs/speedup per step.")
@click.option("--no-cache", is_flag=True, help="Re-measure the latency model even if cached.")
@ray_option
@click.option("--latency-on", metavar="RESOURCE", help="Time every latency measurement on the Ray worker holding this "
              "custom resource, e.g. device:pi5 (implies --ray; scoring and rewriting stay here).")
@click.option("--depth", is_flag=True, help="Also remove residual blocks: one search over width steps and blocks (and "
                                            "ranks with --low-rank) by measured gain per unit of sensitivity.")
@click.option("--low-rank", "low_rank", is_flag=True, help="Also factorize MatMul/Gemm/1x1 Conv/LSTM/GRU input weights, "
              "only where factorizing measured faster (whitened SVD on --data).")
@click.option("--block-repair", type=click.Choice(["none", "mean"]), default="none", show_default=True,
              help="With --depth: a dropped block leaves y = x + E[f(x)] per channel (from --data, else seeded inputs).")
@with_recover_options
@verbose_option
@run_command("auto")
def auto(model, output, target_speedup, target_macs, target_params, max_drop, min_snr, criterion, compensate, round_to,
         exclude, shapes,
         allow_io_change, provider, threads, runs, latency_model, calib, n_eval, data, max_evals, time_limit, seed,
         save_plan, report, plot, no_cache, depth, low_rank, block_repair, verbose, head, ray_address, latency_on,
         recover, recover_time, recover_max_steps, **task_kw):
    """Prune MODEL to a goal within a metric budget; write OUTPUT (verified like prune)."""
    goal, target = _goal(target_speedup, target_macs, target_params)
    if round_to < 1:
        raise UsageError(f"--round-to {round_to} must be at least 1")
    criterion = checks.default_criterion(criterion, data, compensate)
    check_output_path(model, output)
    check_recover(recover, data, recover_time, recover_max_steps)
    check_criterion(criterion)
    if depth and criteria.get(criterion).external:
        raise UsageError(f"--criterion {criterion} scores the original's channels: it does not combine with --depth yet")
    original = load_model(model)
    checks.check_exclude(original, exclude)
    shapes = checks.shapes_from_data(original, data, shapes)
    source = f"--data {data.path}" if data else "seeded random inputs"
    evaluate, metric, metric_name = _task_evaluator(model, data, task_kw, n_eval, shapes, head)
    max_drop, min_snr, why = _default_budget(model, max_drop, min_snr, metric_name)
    if why:
        click.echo(f"budget: {why}")
    search = AutoConfig(goal=goal, target=target, max_drop=max_drop, min_snr=min_snr, calib=calib, n_eval=n_eval,
                        latency=latency_model, provider=provider, threads=threads, runs=runs, cache=not no_cache,
                        max_evals=max_evals, time_limit=time_limit, depth=depth,
                        low_rank=low_rank, block_repair=block_repair)
    config = PruneConfig(ratio=0.0, criterion=criterion, compensate=compensate, round_to=round_to,
                         exclude=tuple(exclude), shapes=shapes, allow_io_change=allow_io_change, seed=seed)
    if allow_io_change:  # fidelity feeds each candidate its kept state; the other evaluators cannot yet
        unsupported = [o for o, on in (("--task", task_kw.get("task")), ("--head", head), ("--depth", depth),
                                       ("--low-rank", low_rank), ("--recover", recover)) if on]
        if unsupported:
            checks.check_auto_state(original, shapes, exclude, unsupported[0])
    calib_feeds = None
    if recover or criteria.get(criterion).external:
        if data is None:
            raise UsageError(f"--{'recover' if recover else 'criterion ' + criterion} needs calibration data: "
                             f"pass --data")
        from ..search.fidelity import split_part, spread

        examples = split_part(original, data, 0)  # the split auto calibrates on
        calib_feeds = [ex.feeds for ex in examples]
        scores = gradient_scores_for(original, config, [ex.feeds for ex in spread(examples, search_calib_examples())])
        config = replace(config, scores=scores)
    executor = executor_for(ray_address, needed=latency_on is not None)
    timer = device_timer(executor, latency_on, provider) if latency_on else None

    def on_sensitivity(sens):
        click.echo(f"sensitivity: {len(sens.sizes)} groups, {sens.passes} forward passes ({sens.seconds:.1f}s) on "
                   f"{calib} calibration feeds from {source}; most sensitive: "
                   + ", ".join(f"{n} ({d:.3g})" for n, d in sens.ranking()[:3]))

    def on_latency(lat):
        click.echo(f"latency model: {provider}, {threads} thread(s), original {lat.base_ms:.3f} ms; "
                   + ("cached" if lat.cached else f"{lat.passes} timed passes ({lat.seconds:.1f}s)"))

    def progress(e):
        speed = f"{e['predicted_speedup']:.2f}x pred | " if "predicted_speedup" in e else ""
        if "measured_speedup" in e:
            speed = speed[:-3] + f", {e['measured_speedup']:.2f}x measured | "
        m = e.get("metrics")
        if not m:
            metric = "not evaluated"
        elif metric_name != "top-1 agreement":
            metric = (f"{metric_name} {abs(m['task']):.1f} (drop {e['drop']:.2f}), top1 {m['top1_agreement']:.1f}%, "
                      f"SNR {m['snr_db']:.1f} dB")
        else:
            metric = f"top1 {m['top1_agreement']:.1f}% (drop {e['drop']:.2f}), SNR {m['snr_db']:.1f} dB"
        click.echo(f"step {e['step']:3d}: {e['group']} {e['kept']}/{e['size']} | {speed}MACs {100 * e['macs']:.1f}% "
                   f"| params {100 * e['params']:.1f}% | {metric} | {_verdict(e)}")

    done = auto_prune(model, replace(search, metric=metric), config, data=data, evaluate=evaluate,
                      on_sensitivity=on_sensitivity, on_latency=on_latency, progress=progress,
                      executor=executor, timer=timer)
    found, speedup = done.search, done.measured_speedup
    n_used = len(getattr(evaluate, "clips", None) or evaluate.examples) if evaluate is not None else n_eval
    from .prune import print_summary

    print_summary(done.result, Path(model).stat().st_size)
    print_steps(done.result)
    budget = " and ".join(([f"drop <= {max_drop:g}"] if max_drop is not None else [])
                          + ([f"SNR >= {min_snr:g} dB"] if min_snr is not None else []))
    unit = "x" if goal == "speedup" else f" of the original's {goal}"
    verb = "reached" if found.reached else "NOT reached"
    click.echo(f"goal {goal} {target:g}: {verb} ({found.stop_reason}); got {found.achieved:.3g}{unit}, "
               f"measured speedup {speedup:.2f}x on {provider if latency_model == 'measured' else 'the MACs proxy'}; "
               f"{metric_name} {_shown(done.metrics, metric):.1f} on {n_used} held-out feeds from {source} "
               f"(budget: {budget}); {found.evals} evaluations")
    if evaluate is not None and max_drop is not None:
        noise = budget_noise(found.baseline if found.baseline is not None else _shown(done.metrics, metric), n_used)
        if noise > max_drop:
            click.echo(f"note: the budget was judged on {n_used} held-out examples, where {metric_name} has a standard "
                       f"error of about {noise:.1f} points, more than the {max_drop:g} allowed: the result can exceed "
                       f"the budget on new data; give more --data or a larger --holdout")
    unchanged = _explain_no_op(done, max_drop, min_snr, metric_name, data is not None, criterion, compensate)
    if isinstance(evaluate, HeadEvaluator) and evaluate.cfg is not None:
        _pipeline_line(evaluate, original, done.result.model, head)
    fid_feeds = _fidelity_feeds(original, done, evaluate, data, n_eval, seed)
    fidelity = closeness.against_original(original, done.result.model, data=data, shapes={}, values=None, seed=seed,
                                          gated=False, feeds=fid_feeds, resized=done.result.resized_io)
    check_verified(done.result)  # before anything is written (and before recovery)
    data_out = done.report() | {"feeds": source, "fidelity": fidelity}
    if recover:
        data_out |= _recover_final(original, done, calib_feeds, evaluate, metric, metric_name, fidelity, fid_feeds,
                                   seconds=recover_time, seed=seed, max_steps=recover_max_steps)
        fidelity = data_out["fidelity"]
    if plot:  # first: the one writer that can fail on a missing package
        from ..search.plot import plot_trajectory

        plot_trajectory(data_out, plot, title=f"{Path(model).name}: {goal} {target:g}, budget {budget} — {verb}")
    if report:
        write_json(report, data_out)
    if save_plan:
        write_text(save_plan, done.plan.to_json())
    closeness.report(fidelity, data_given=data is not None, criterion=criterion, compensate=compensate)
    click.echo(f"wrote {describe_written(done.result.save(output))}")
    closeness.closing(fidelity)
    if unchanged:
        return "UNCHANGED"
    return "PASSED" if found.reached else "PARTIAL"


def search_calib_examples() -> int:
    """Examples the search calibrates on (AutoConfig.calib_examples): the gradient criteria score on as many."""
    return AutoConfig.__dataclass_fields__["calib_examples"].default


def _recover_final(original, done, feeds, evaluate, metric, metric_name, before, fid_feeds, **kw) -> dict:
    """auto --recover: the verified final model recovered, then judged again by the search's budget on
    its held-out feeds (kept only within it); the budget metric and the fidelity against the
    original, before -> after."""
    from .recover import run_recovery

    click.echo("before recovery: " + closeness.line(before))
    pruned = done.result.model
    report = run_recovery(original, done.result, feeds, **kw)
    out = {"recover": report, "fidelity_before_recover": before, "final_metrics_before_recover": done.metrics}
    if evaluate is None:  # the search's own label-free judge: fidelity on the same held-out feeds
        from ..search.fidelity import Fidelity

        evaluate = Fidelity(original, fid_feeds[0])
    after = evaluate(done.result.model)
    s = done.search
    within = s.baseline is None or (
        (s.max_drop is None or s.baseline - after[metric] <= s.max_drop + 1e-9)
        and (s.min_snr is None or after["snr_db"] >= s.min_snr))
    click.echo(f"recover: {metric_name} {_shown(done.metrics, metric):.1f} -> {_shown(after, metric):.1f} on the "
               f"search's {len(fid_feeds[0])} held-out feeds" + ("" if within else
               "; over the budget after recovery: the unrecovered weights are kept"))
    out["recover"]["kept"] = within
    if within:
        done.metrics = out["final_metrics"] = after
    else:
        done.result.model = pruned
    out["fidelity"] = closeness.against_original(original, done.result.model, data=None, shapes={}, values=None,
                                                 seed=0, gated=False, feeds=fid_feeds)
    return out


def _verdict(e) -> str:
    if e["accepted"]:
        return "ok"
    if e.get("speedup_vs_previous") is not None:  # within budget, but measured no faster
        return f"not faster ({e['speedup_vs_previous']:.3f}x), step back"
    return "over budget, step back"


def _explain_no_op(done, max_drop, min_snr, metric_name, data_given, criterion, compensate) -> bool:
    """An unchanged result says why and what to try."""
    if any(layer["channels_after"] != layer["channels_before"] for layer in done.result.layers) or done.result.steps:
        return False
    rejected = [e for e in done.search.trajectory if not e["accepted"]]
    if rejected:
        e = rejected[0]
        m = e.get("metrics", {})
        why = (f"all {len(rejected)} steps went over the budget (first: {e['group']} {e['kept']}/{e['size']}: "
               f"{metric_name} drop {e.get('drop', 0):.2f}, SNR {m.get('snr_db', float('nan')):.1f} dB)")
    else:
        why = f"no width step was possible ({done.search.stop_reason})"
    tips = []
    if not data_given or criterion not in ("reconstruction", "activation") or compensate != "lstsq":
        tips.append("--data DIR --criterion reconstruction --compensate lstsq (rank on data, refit what is left)")
    tips.append("a looser budget (--max-drop / --min-snr)" if max_drop is not None or min_snr is not None else "")
    if metric_name == "top-1 agreement" and max_drop is not None:
        tips.append("for an embedding, judge by --min-snr or through its consumer with --head MODEL")
    click.echo(f"nothing pruned: {why}; try " + "; ".join(t for t in tips if t))
    return True


def _fidelity_feeds(original, done, evaluate, data, n_eval: int, seed: int):
    examples = getattr(evaluate, "examples", None)
    if examples:
        return [ex.feeds for ex in examples], f"{len(examples)} held-out examples of --data {data.path}"
    from ..search.fidelity import make_feeds

    a = done.result.analysis
    feeds = make_feeds(original, a.input_shapes, count=n_eval, seed=seed, data=data, part=1, values=a.input_values)
    where = (f"{len(feeds)} held-out examples of --data {data.path}" if data is not None else
             f"{len(feeds)} seeded random inputs (no --data: give --data for figures on real audio)")
    return feeds, where


def _pipeline_line(evaluate, original, model, head) -> None:
    """Detection and false accepts (or the task's figures) of the whole pipeline, before and after."""
    before, after = evaluate.details(original)["details"], evaluate.details(model)["details"]
    n = len(evaluate.clips)
    if evaluate.cfg.task == "wakeword":
        rate = lambda d: "n/a" if d["detection_rate"] is None else f"{100 * d['detection_rate']:.1f}%"  # noqa: E731
        fa = lambda d: (f"{d['false_accepts']}" + (f" ({d['false_accepts_per_hour']:.2f}/h)"  # noqa: E731
                        if d["false_accepts_per_hour"] is not None else ""))
        click.echo(f"pipeline through {Path(head).name} on {n} held-out clips ({before['positives']} positive): "
                   f"detection {rate(before)} -> {rate(after)}, false accepts {fa(before)} -> {fa(after)} "
                   f"at threshold {before['threshold']:g}")
    else:
        from ..bench.tasks import TASK_QUALITY

        key = TASK_QUALITY[evaluate.cfg.task][0]
        click.echo(f"pipeline through {Path(head).name} on {n} held-out clips: {key} {before[key]} -> {after[key]}")
