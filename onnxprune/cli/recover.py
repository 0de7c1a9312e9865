"""`--recover` on prune, auto and sweep: distil the original into the pruned model on --data
(optional extra), and `--criterion taylor|fisher`, whose gradient scores come from the same extra.
torch is imported only here, lazily, when one of them is asked for."""

from __future__ import annotations

import click

from ..errors import UsageError
from ..prune import criteria

recover_options = [
    click.option("--recover", "recover", is_flag=True,
                 help="After pruning, update the kept weights by distillation from the original on --data "
                      "(label-free; graph and shapes unchanged; needs onnxprune[recover])."),
    click.option("--recover-time", type=float, default=120.0, show_default=True, metavar="SECONDS",
                 help="Time budget of --recover's training (split over the rounds with --recover-rounds)."),
    click.option("--recover-max-steps", type=int, default=5000, show_default=True, metavar="N",
                 help="At most N optimizer steps (a binding cap makes the result reproducible to the byte)."),
]

rounds_option = click.option(
    "--recover-rounds", type=int, default=1, show_default=True, metavar="K",
    help="With --recover: prune in K rounds (an equal share of the channels each), recovering for "
         "--recover-time/K after each; every round's rewrite is verified. 1: prune once, then recover.")


def with_recover_options(fn):
    for option in reversed(recover_options):
        fn = option(fn)
    return fn


def check_recover(recover: bool, data, recover_time: float, max_steps: int = 1, rounds: int = 1) -> None:
    """Before any work: the extra is installed, there is data, the budget is positive."""
    if rounds != 1 and not recover:
        raise UsageError("--recover-rounds needs --recover")
    if not recover:
        return
    if data is None:
        raise UsageError("--recover needs calibration data: pass --data (audio folder, manifest or .npz dumps)")
    if not recover_time > 0:
        raise UsageError(f"--recover-time {recover_time} must be positive")
    if max_steps < 1 or rounds < 1:
        raise UsageError(f"--recover-max-steps {max_steps} and --recover-rounds {rounds} must be at least 1")
    from ..recover import require

    require()


def recover_config(seconds: float, seed: int, max_steps: int = 5000):
    from ..recover import RecoverConfig

    return RecoverConfig(seconds=seconds, steps=max_steps, seed=seed)


def recover_result(original, result, feeds, *, seconds: float, seed: int, max_steps: int = 5000):
    """The RecoverResult of `result`'s model (needs the extra; checked by check_recover)."""
    from ..recover import recover_pruned

    return recover_pruned(original, result, feeds, recover_config(seconds, seed, max_steps))


def run_recovery(original, result, feeds, *, seconds: float, seed: int, max_steps: int = 5000) -> dict:
    """Replace result.model by its recovered version; print and return the report."""
    rec = recover_result(original, result, feeds, seconds=seconds, seed=seed, max_steps=max_steps)
    result.model = rec.model
    print_recovery(rec)
    return rec.report()


def print_recovery(rec, prefix: str = "recover") -> None:
    b, a = rec.before, rec.after
    updated = (f"{rec.trained} initializers updated" if rec.trained else
               "no held-out improvement (pruned weights kept)")
    click.echo(f"{prefix}: {rec.steps} steps (stopped by: {rec.stop}), {rec.seconds:.1f}s with conversion and checks, "
               f"{updated}, {rec.train_examples} examples to train, {rec.held_out_examples} held out; vs the "
               f"original on the held-out ones: top-1 agreement {b['top1_agreement']:.1f}% -> "
               f"{a['top1_agreement']:.1f}%, SNR {b['snr_db']:.1f} -> {a['snr_db']:.1f} dB, distillation loss "
               f"{b['loss']:.4g} -> {a['loss']:.4g}")
    click.echo(f"{prefix}: graph, interface and shapes unchanged (initializer values only); checker passed; "
               f"onnxruntime equals the trained model (max rel diff {rec.check_diff:.2g})")


def run_rounds(original, config, feeds, *, rounds: int, seconds: float, seed: int, max_steps: int):
    """prune --recover --recover-rounds K: the last round's PruneResult (model recovered, figures
    against the original) and the report of every round."""
    from ..recover.iterative import iterative_prune

    def progress(r):
        v, rec = r["verify_max_abs_diff"], r["recover"]
        click.echo(f"round {r['round']}/{rounds}: ratio {r['ratio']:g}, rewrite verified against its reference "
                   f"(max |diff| {v:.3g}), {100 * r['macs'] / macs0:.1f}% of the MACs; recovery {rec['steps']} steps "
                   f"({rec['stop']}), held-out top-1 agreement {rec['before']['top1_agreement']:.1f}% -> "
                   f"{rec['after']['top1_agreement']:.1f}%, SNR {rec['before']['snr_db']:.1f} -> "
                   f"{rec['after']['snr_db']:.1f} dB")

    from ..core.cost import count_macs
    from ..core.shapes import infer_value_shapes
    from ..analysis import analyze_model

    a = analyze_model(original, **config.analyze_options())
    macs0 = max(1, count_macs(original, infer_value_shapes(original, a.input_shapes, a.input_values)))
    done = iterative_prune(original, config, feeds, rounds, recover_config(seconds, seed, max_steps), progress=progress)
    print_recovery(done.recovered, prefix=f"recover (round {rounds})")
    return done.result, done.report()


# --criterion taylor|fisher: gradient scores (recover extra), handed to prune as precomputed scores

def check_criterion(criterion: str | None) -> None:
    """A gradient criterion needs the recover extra: one line naming the install command."""
    if criterion is None or not criteria.get(criterion).external:
        return
    from ..recover import INSTALL, available

    if not available():
        raise UsageError(f"--criterion {criterion} ranks channels by gradients and needs torch and onnx2torch: "
                         f"{INSTALL}")


def gradient_scores_for(model, config, feeds) -> dict | None:
    """Group name -> Taylor/Fisher scores of `model` on `feeds` (None for a built-in criterion),
    for PruneConfig.scores; said on one line."""
    if not criteria.get(config.criterion).external:
        return None
    import time

    from ..analysis import analyze_model
    from ..prune.plan import group_names
    from ..recover.criteria import gradient_scores

    start = time.perf_counter()
    analysis = analyze_model(model, **config.analyze_options())
    scores = gradient_scores(analysis, list(feeds), config.criterion, seed=config.seed)
    names = group_names(analysis)
    click.echo(f"criterion: {config.criterion} (label-free gradient of a channel mask through onnx2torch) on "
               f"{min(len(feeds), 128)} calibration examples, {len(scores)} groups scored in "
               f"{time.perf_counter() - start:.1f}s")
    return {names[g]: s for g, s in scores.items()}
