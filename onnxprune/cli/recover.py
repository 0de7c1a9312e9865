"""`prune --recover`: distil the original into the pruned model on --data (optional extra)."""

from __future__ import annotations

import click

from ..errors import UsageError

recover_options = [
    click.option("--recover", "recover", is_flag=True,
                 help="After pruning, update the kept weights by distillation from the original on --data "
                      "(label-free; graph and shapes unchanged; needs onnxprune[recover])."),
    click.option("--recover-time", type=float, default=120.0, show_default=True, metavar="SECONDS",
                 help="Time budget of --recover's training."),
]


def with_recover_options(fn):
    for option in reversed(recover_options):
        fn = option(fn)
    return fn


def check_recover(recover: bool, data, recover_time: float) -> None:
    """Before any work: the extra is installed, there is data, the budget is positive."""
    if not recover:
        return
    if data is None:
        raise UsageError("--recover needs calibration data: pass --data (audio folder, manifest or .npz dumps)")
    if not recover_time > 0:
        raise UsageError(f"--recover-time {recover_time} must be positive")
    from ..recover import require

    require()


def run_recovery(original, result, feeds, *, seconds: float, seed: int) -> dict:
    """Replace result.model by its recovered version; print and return the report."""
    from ..recover import RecoverConfig, recover_pruned

    rec = recover_pruned(original, result, feeds, RecoverConfig(seconds=seconds, seed=seed))
    result.model = rec.model
    b, a = rec.before, rec.after
    updated = (f"{rec.trained} initializers updated" if rec.trained else
               "no held-out improvement (pruned weights kept)")
    click.echo(f"recover: {rec.steps} steps (stopped by: {rec.stop}), {rec.seconds:.1f}s with conversion and checks, "
               f"{updated}, {rec.train_examples} examples to train, {rec.held_out_examples} held out; vs the "
               f"original on the held-out ones: top-1 agreement {b['top1_agreement']:.1f}% -> "
               f"{a['top1_agreement']:.1f}%, SNR {b['snr_db']:.1f} -> {a['snr_db']:.1f} dB, distillation loss "
               f"{b['loss']:.4g} -> {a['loss']:.4g}")
    click.echo(f"recover: graph, interface and shapes unchanged (initializer values only); checker passed; "
               f"onnxruntime equals the trained model (max rel diff {rec.check_diff:.2g})")
    return rec.report()
