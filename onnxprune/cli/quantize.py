"""`onnxprune quantize`: int8 post-training quantization via onnxruntime.quantization."""

from __future__ import annotations

import click

from ..quantize import CALIBRATION, FORMATS, MODES, QuantizeConfig, quantize as run_quantize
from ..core.shapes import parse_shape_specs
from . import checks, closeness
from .common import gate_options, human, run_command, shape_option, verbose_option
from .data_options import data_options


@click.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("output", type=click.Path(dir_okay=False))
@click.option("--mode", default="dynamic", show_default=True, type=click.Choice(MODES),
              help="dynamic: int8 weights, activations quantized at run time; static: calibrated int8 activations.")
@click.option("--format", "fmt", default="qdq", show_default=True, type=click.Choice(FORMATS),
              help="Static mode: QuantizeLinear/DequantizeLinear pairs (qdq) or integer operators (qoperator).")
@click.option("--per-channel", is_flag=True, help="One weight scale per output channel.")
@click.option("--full-range", is_flag=True,
              help="8-bit weights. Static mode writes 7-bit weights by default: they give the same results on "
                   "x86 CPUs without VNNI (AVX2/AVX-512 only), where 8-bit int8 products can saturate.")
@click.option("--calibration", default="minmax", show_default=True, type=click.Choice(CALIBRATION),
              help="Static mode: how activation ranges are chosen from the calibration data.")
@click.option("--no-preprocess", is_flag=True, help="Skip onnxruntime's quant_pre_process (Conv+BN fusion, shapes).")
@click.option("--exclude", multiple=True, metavar="NODE", help="Leave this node in float (repeatable).")
@gate_options
@data_options("calib")
@shape_option
@verbose_option
@run_command("quantize")
def quantize(model, output, mode, fmt, per_channel, full_range, calibration, no_preprocess, exclude, min_snr, max_drop,
             data, shapes, verbose):
    """Quantize MODEL to int8 and write OUTPUT (static mode calibrates on --data), then say how close
    it is to the original."""
    closeness.check_gates(min_snr, max_drop)
    found = {}

    checks.check_exclude(_graph_only(model), exclude)

    def accept(original, quantized):
        given = parse_shape_specs(checks.shapes_from_data(original, data, shapes)) if shapes or data else {}
        found["fidelity"] = closeness.against_original(original, quantized, data=data, shapes=given, values=None,
                                                       seed=0, gated=min_snr is not None or max_drop is not None)
        closeness.gate(found["fidelity"], min_snr=min_snr, max_drop=max_drop)

    config = QuantizeConfig(mode=mode, data=data, format=fmt, per_channel=per_channel,
                            reduce_range=False if full_range else None, calibration=calibration,
                            preprocess=not no_preprocess, exclude=tuple(exclude),
                            shapes=parse_shape_specs(shapes) if shapes else None)
    result = run_quantize(model, output, config, accept=accept)
    change = 100.0 * (result.size_after - result.size_before) / result.size_before
    click.echo(f"size: {human(result.size_before)} -> {human(result.size_after)} ({change:+.1f}%)")
    if result.calibration_examples:
        click.echo(f"calibrated on {result.calibration_examples} examples ({calibration})")
    if result.compared:
        line = (f"vs original on {result.compared} {result.compared_on}: max |diff| {result.max_abs_diff:.3g}, "
                f"mean |diff| {result.mean_abs_diff:.3g}")
        if result.argmax_agreement is not None:
            line += f", same top class {100 * result.argmax_agreement:.1f}%"
        click.echo(line)
    if result.max_weight is not None:
        click.echo(f"weights: int8 {'per-channel' if result.per_channel else 'per-tensor'}, "
                   f"{'7-bit (same results with and without VNNI)' if result.max_weight <= 64 else '8-bit'}")
    for note in result.notes:
        click.echo(f"note: {note}")
    closeness.report(found["fidelity"], data_given=data is not None, command="quantize")
    click.echo(f"wrote {result.path} ({human(result.size_after)}B); onnxruntime loads it")
    closeness.closing(found["fidelity"])


def _graph_only(path):
    """The graph without its weights, for name checks before any work (a bad file is quantize's to report)."""
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception:
        return onnx.ModelProto()
