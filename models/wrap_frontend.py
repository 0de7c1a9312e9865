"""Bake input/output scaling into a front-end model for `--frontend`.

onnxprune reads audio as float32 in [-1, 1]. openwakeword feeds melspectrogram.onnx int16-range
floats and maps its output by x/10 + 2 before embedding_model.onnx, so:

    python models/wrap_frontend.py melspectrogram.onnx mel_oww.onnx --in-scale 32768 --out-scale 0.1 --out-shift 2

writes a front-end computing 0.1 * mel(32768 * x) + 2, to pass as `--frontend mel_oww.onnx`.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from onnxprune.data.frontend import with_affine  # noqa: E402
from onnxprune.core.io import load_model, save_model  # noqa: E402

OPENWAKEWORD = {"in_scale": 32768.0, "out_scale": 0.1, "out_shift": 2.0}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--in-scale", type=float, default=1.0, help="multiply the waveform by this first")
    ap.add_argument("--out-scale", type=float, default=1.0, help="multiply the front-end output by this")
    ap.add_argument("--out-shift", type=float, default=0.0, help="then add this")
    args = ap.parse_args(argv)
    save_model(with_affine(load_model(args.input), args.in_scale, args.out_scale, args.out_shift), args.output)
    print(f"wrote {args.output}: {args.out_scale:g} * f({args.in_scale:g} * x) + {args.out_shift:g}")


if __name__ == "__main__":
    main()
