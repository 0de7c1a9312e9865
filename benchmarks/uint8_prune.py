"""Pruning uint8-weight quantized models (nonzero zero points): exactness and what ranking on
dequantized values buys, on the bundled keyword spotter.

onnxruntime's `quantize_static` with `weight_type=QUInt8` stores weights as uint8 with a zero
point near 128, in QDQ or QOperator format. The pruned model is verified against the reference
whose removed columns hold the zero point (they dequantize to 0); `l1` ranks channels on
`(w - zero_point) * scale`. For contrast, the same prune ranked on the raw stored values (what
magnitude criteria read before) — both measured against the unpruned quantized model on the
held-out clips (`onnxprune/assets/kws/eval`): top-1 agreement and SNR of the logits, as `prune`'s
fidelity line reports them. The float model pruned `l1` at the same ratio (against the float
original) is the reference point: dequantized ranking is the float model's ranking up to rounding.

Needs: nothing beyond the package (the keyword spotter and its clips ship with it).

    python benchmarks/uint8_prune.py [--ratios 0.125 0.25 0.5] [--out benchmarks/results/uint8_prune.md]
"""

from __future__ import annotations

import importlib
import logging
import tempfile
from pathlib import Path

from _common import parser, write


def main():
    ap = parser(__doc__, "uint8_prune.md")
    ap.add_argument("--ratios", type=float, nargs="+", default=[0.125, 0.25, 0.5])
    args = ap.parse_args()
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    import onnxprune
    from onnxprune.cli import closeness
    from onnxprune.data import DataConfig, load_examples
    from onnxprune.quantize.ort import _Reader

    logging.getLogger().setLevel(logging.ERROR)  # the quantizer's pre-processing advice
    assets = Path(onnxprune.__file__).parent / "assets" / "kws"
    calib = DataConfig(path=str(assets / "calib"), frontend=str(assets / "logmel.onnx"))
    held = DataConfig(path=str(assets / "eval"), frontend=str(assets / "logmel.onnx"))
    criteria = importlib.import_module("onnxprune.prune.criteria")
    dequantized = criteria.dequantized_weight
    rows, data = [], []
    float_model = onnx.load(str(assets / "kws.onnx"))
    float_feeds = [ex.feeds for ex in load_examples(float_model, held)]
    models = []
    for fmt in (QuantFormat.QDQ, QuantFormat.QOperator):
        for per_channel in (False, True):
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "kws_u8.onnx"
                quantize_static(str(assets / "kws.onnx"), str(path), _Reader(assets / "kws.onnx", calib),
                                quant_format=fmt, per_channel=per_channel, weight_type=QuantType.QUInt8,
                                activation_type=QuantType.QUInt8)
                quantized = onnx.load(str(path))
            models.append((f"{fmt.name} {'per-channel' if per_channel else 'per-tensor'}", quantized,
                           [ex.feeds for ex in load_examples(quantized, held)]))
    for ratio in args.ratios:
        base = onnxprune.prune(float_model, ratio=ratio)
        ref = closeness.compare(float_model, base.model, float_feeds, "held-out clips")
        rows.append(f"| {ratio:g} | float (reference point) | {base.before['params']:,} -> {base.after['params']:,} | "
                    f"{'yes' if base.verify.passed else 'NO'} | {ref['top1_agreement']:.1f} %, {ref['snr_db']:.1f} dB | |")
        data.append({"format": "float", "ratio": ratio, "top1": ref["top1_agreement"], "snr_db": ref["snr_db"]})
        for name, quantized, feeds in models:
            figures = {}
            for ranking in ("dequantized", "raw"):
                criteria.dequantized_weight = dequantized if ranking == "dequantized" else (lambda *a: None)
                try:
                    result = onnxprune.prune(quantized, ratio=ratio)
                finally:
                    criteria.dequantized_weight = dequantized
                fid = closeness.compare(quantized, result.model, feeds, f"{len(feeds)} held-out clips")
                figures[ranking] = {"params": [result.before["params"], result.after["params"]],
                                    "verified": result.verify.passed, "max_diff": result.verify.max_abs_diff,
                                    "top1": fid["top1_agreement"], "snr_db": fid["snr_db"]}
            d, r = figures["dequantized"], figures["raw"]
            data.append({"format": name, "ratio": ratio, **figures})
            rows.append(f"| {ratio:g} | {name} | {d['params'][0]:,} -> {d['params'][1]:,} | "
                        f"{'yes' if d['verified'] else 'NO'}, {d['max_diff']:.3g} | {d['top1']:.1f} %, {d['snr_db']:.1f} dB | "
                        f"{r['top1']:.1f} %, {r['snr_db']:.1f} dB |")
    table = ("Keyword spotter quantized static with QUInt8 weights and activations, pruned `l1` (no data); fidelity "
             f"against the unpruned model on the {len(float_feeds)} held-out clips\n\n"
             "| ratio | model | parameters | verified, max diff | ranked on (w - zp) * scale: top-1, SNR | "
             "ranked on raw stored values: top-1, SNR |\n|---|---|---|---|---|---|\n" + "\n".join(rows))
    print(table)
    write(args.out, table, data)


if __name__ == "__main__":
    main()
