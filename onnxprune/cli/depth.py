"""CLI pieces for depth pruning and low-rank factorization: `prune` options, the blocks table of
`inspect`, and the per-step lines `prune` prints (kept here so cli/main.py only wires them in)."""

from __future__ import annotations

import click

from ..errors import UsageError
from .common import human, table


def depth_options(f):
    """--drop-blocks / --low-rank / --rank / --low-rank-method for `prune`."""
    f = click.option("--low-rank-method", type=click.Choice(["whiten", "asvd", "svd"]), default="whiten",
                     show_default=True, help="whiten/asvd use --data statistics (plain svd without --data).")(f)
    f = click.option("--rank", "ranks", multiple=True, metavar="LAYER=R",
                     help="Factorize LAYER (node name) at rank R (repeatable; instead of --low-rank).")(f)
    f = click.option("--low-rank", type=float, default=None, metavar="RATIO",
                     help="Factorize each eligible MatMul/Gemm/1x1 Conv/LSTM/GRU input weight, removing RATIO of its MACs.")(f)
    f = click.option("--block-repair", type=click.Choice(["none", "mean"]), default="none", show_default=True,
                     help="mean: a dropped block leaves y = x + E[f(x)] per channel (from --data, else 16 seeded "
                          "inputs), folded into a following MatMul/Gemm bias when possible.")(f)
    f = click.option("--drop-blocks", multiple=True, metavar="NAMES",
                     help="Remove residual blocks y = x + f(x) by name (comma-separated or repeated; see inspect).")(f)
    return f


def block_names(values) -> tuple[str, ...]:
    return tuple(n.strip() for v in values for n in v.split(",") if n.strip())


def parse_ranks(specs) -> dict[str, int] | None:
    out = {}
    for spec in specs:
        name, sep, value = spec.rpartition("=")
        if not sep or not name:
            raise UsageError(f"--rank {spec}: use LAYER=RANK (e.g. --rank node_MatMul_3=16)")
        try:
            out[name] = int(value)
        except ValueError:
            raise UsageError(f"--rank {spec}: the rank must be an integer") from None
    return out or None


def print_blocks(model, shapes, values, *, sensitivity: bool, seed: int = 0) -> list[dict]:
    """The residual-block table of `inspect` (with measured sensitivity when asked); returns its rows."""
    if sensitivity:
        from ..search.depth import block_sensitivity

        rows = block_sensitivity(model, shapes=shapes, values=values, seed=seed)
    else:
        from ..prune.depth import model_blocks

        rows = [b.to_dict() for b in model_blocks(model, shapes, values)]
    if not rows:
        click.echo("blocks: no residual Add (y = x + f(x)) in the main graph")
        return rows
    lines = []
    for r in rows:
        status = "removable" if r["removable"] else f"not removable: {r['reason']}"
        line = [r["name"], r["kind"] if r["removable"] else "-", r["nodes"] or "-", human(r["params"]) if r["params"] else "-"]
        if sensitivity:
            line += [human(r["macs_saved"]) if "macs_saved" in r else "-",
                     f"{r['nmse']:.3g}" if "nmse" in r else "-"]
        lines.append(line + [status])
    headers = ["block", "kind", "nodes", "params"] + (["MACs saved", "nmse alone"] if sensitivity else []) + ["status"]
    click.echo(table(lines, headers))
    click.echo(f"{sum(r['removable'] for r in rows)} of {len(rows)} residual Adds removable (prune --drop-blocks NAMES)")
    return rows


def print_steps(result, original=None, feeds_count: int = 16) -> None:
    """One line per depth/low-rank step; for low-rank, its fidelity to the original model."""
    for step in result.steps:
        v = step["verify"]
        check = "skipped" if v is None else (f"passed, max |pruned - reference| = {v['max_abs_diff']:.3g}" if v["passed"]
                                            else f"FAILED: {v['message']}")
        if step["step"] == "depth":
            names = ", ".join(f"{b['name']} ({b['kind']})" for b in step["blocks"])
            repair = ""
            if step.get("repair", "none") != "none":
                folded = step.get("repair_folded", [])
                repair = f"; mean repair (y = x + E[f(x)]{', folded into the next bias for ' + ', '.join(folded) if folded else ''})"
            click.echo(f"depth: dropped {names}{repair}; verify vs zeroed-projection reference"
                       f"{' + repair constants' if repair else ''}: {check}")
        else:
            before = sum(r["weights_before"] for r in step["layers"])
            after = sum(r["weights_after"] for r in step["layers"])
            click.echo(f"low-rank ({step['method']}): {len(step['layers'])} layers, weights {human(before)} -> "
                       f"{human(after)}; verify vs A.B in the original layers: {check}")
    if original is not None and any(s["step"] == "lowrank" for s in result.steps):
        from ..search.fidelity import Fidelity, make_feeds

        feeds = make_feeds(original, result.analysis.input_shapes, count=feeds_count, seed=result.config.seed + 7)
        m = Fidelity(original, feeds)(result.model)
        click.echo(f"fidelity vs original ({feeds_count} seeded inputs): SNR {m['snr_db']:.1f} dB, "
                   f"top-1 agreement {m['top1_agreement']:.1f}%")
