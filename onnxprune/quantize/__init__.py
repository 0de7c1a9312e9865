"""int8 post-training quantization through onnxruntime's own quantizer (ort.py), compared with the original."""

from .ort import CALIBRATION, FORMATS, MODES, QuantizeConfig, QuantizeResult, quantize

__all__ = ["CALIBRATION", "FORMATS", "MODES", "QuantizeConfig", "QuantizeResult", "quantize"]
