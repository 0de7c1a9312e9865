"""Paths of the bundled keyword spotter's assets and the --data options that read its calibration clips."""

from pathlib import Path

import onnxprune

ASSETS = Path(onnxprune.__file__).parent / "assets" / "kws"
DATA = ["--data", ASSETS / "calib", "--frontend", ASSETS / "logmel.onnx"]
