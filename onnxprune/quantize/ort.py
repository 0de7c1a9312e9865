"""Post-training int8 quantization with onnxruntime's own quantizer (`onnxruntime.quantization`).

Why ORT's: its output is what ORT's int8 kernels are written for, and it is maintained with them;
we add what the CLI promises everywhere else: calibration through the shared data interface
(`onnxprune.data.load_examples`), one-line errors, an atomic output file, and a check that the
result loads and stays close to the original on the calibration (or seeded) inputs.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from ..data import DataConfig, DataError, load_examples
from ..errors import ModelError, UsageError, first_line
from ..core import external
from ..core.io import EXTERNAL_DATA_THRESHOLD, check_output_path, clamp_ir_version, load_model, save_model
from ..core.runtime import make_session, random_feeds

MODES = ("dynamic", "static")
FORMATS = ("qdq", "qoperator")
CALIBRATION = ("minmax", "entropy", "percentile")


@dataclass(frozen=True)
class QuantizeConfig:
    mode: str = "dynamic"
    data: DataConfig | None = None      # calibration data (static mode)
    format: str = "qdq"                 # static only: QDQ pairs or QOperator (QLinearConv, ...)
    per_channel: bool = False
    reduce_range: bool | None = None    # None: static 7-bit weights, dynamic 8-bit (see _reduce_range)
    calibration: str = "minmax"
    preprocess: bool = True             # ORT's quant_pre_process (fuse Conv+BN, shape inference)
    exclude: tuple[str, ...] = ()       # node names left in float
    shapes: dict | None = None          # concrete dims for symbolic inputs (comparison feeds)
    compare: int = 16                   # examples used to compare outputs after quantizing


@dataclass
class QuantizeResult:
    path: Path
    size_before: int
    size_after: int
    ops_after: dict = field(default_factory=dict)
    compared: int = 0                   # examples the outputs were compared on
    compared_on: str = ""               # "examples from --data" or "seeded random inputs"
    max_abs_diff: float = 0.0
    mean_abs_diff: float = 0.0
    argmax_agreement: float | None = None   # share of examples whose top class is unchanged
    calibration_examples: int = 0
    per_channel: bool = False
    reduce_range: bool = False
    max_weight: int | None = None       # largest |int8 weight|; <= 64: no saturation without VNNI
    notes: list = field(default_factory=list)


def _reduce_range(config: QuantizeConfig) -> bool:
    """7-bit weights? Static int8 runs as u8 x s8 on x86 (ORT turns s8 activations into u8); without
    VNNI (AVX2/AVX-512 only) VPMADDUBSW adds pairs of those products in 16 bits and saturates: on such
    a CPU the zoo KWS lost a point and its probabilities moved by up to 0.18 (0.82 per-channel).
    7-bit weights (|w| <= 64) cannot saturate, so static mode uses them on every CPU: the file may
    run on another machine than the one that made it. Measured cost where VNNI makes 8 bits safe:
    one clip of 300 and one of 120 (benchmarks/quantize_zoo.py, docs/results.md). Dynamic mode
    measured the same accuracy on both kinds of CPU with 8-bit weights and lost 3 clips with 7, so
    it keeps 8 unless asked."""
    return config.mode == "static" if config.reduce_range is None else config.reduce_range


def _validate(config: QuantizeConfig) -> None:
    if config.mode not in MODES:
        raise UsageError(f"--mode {config.mode!r}: expected one of {', '.join(MODES)}")
    if config.format not in FORMATS:
        raise UsageError(f"--format {config.format!r}: expected one of {', '.join(FORMATS)}")
    if config.calibration not in CALIBRATION:
        raise UsageError(f"--calibration {config.calibration!r}: expected one of {', '.join(CALIBRATION)}")
    if config.mode == "static" and config.data is None:
        raise UsageError("--mode static needs calibration data: pass --data (audio, manifest or feature dumps)")


class _Reader:
    """onnxruntime CalibrationDataReader over `load_examples` (streams; counts what it fed)."""

    def __init__(self, model_path: Path, data: DataConfig):
        self._examples = load_examples(str(model_path), data)
        self.count = 0

    def get_next(self):
        ex = next(self._examples, None)
        if ex is None:
            return None
        self.count += 1
        return ex.feeds

    def rewind(self):  # some calibrators ask; a fresh pass is not needed for min/max statistics
        pass


def quantize(model_path, output_path, config: QuantizeConfig | None = None, *, accept=None) -> QuantizeResult:
    """Quantize the ONNX file `model_path` to `output_path` (written atomically). `accept(original,
    quantized)`, when given, runs before anything is written and may raise to refuse the result."""
    config = config or QuantizeConfig()
    _validate(config)
    model_path = Path(model_path)
    out = check_output_path(model_path, output_path)
    original = load_model(model_path)
    tmpdir = Path(tempfile.mkdtemp(prefix=".onnxprune-q-", dir=out.parent if str(out.parent) else "."))
    try:
        src = tmpdir / "input.onnx"
        if external.external_bytes(original) < EXTERNAL_DATA_THRESHOLD:
            external.read_in(original)  # ORT's pre-processing copies the model file without its data
        save_model(original, src)
        if config.preprocess:
            src = _preprocess(src, tmpdir)
        target = tmpdir / out.name
        calibrated = _run_quantizer(src, target, config)
        quantized = onnx.load(str(target))
        clamp_ir_version(quantized)
        onnx.save(quantized, str(target))
        try:
            make_session(str(target))
        except Exception as exc:
            raise ModelError(f"quantized model does not load in onnxruntime: {first_line(exc)}") from exc
        result = QuantizeResult(path=out, size_before=model_path.stat().st_size, size_after=target.stat().st_size,
                                calibration_examples=calibrated)
        result.ops_after = _op_counts(quantized)
        result.per_channel, result.reduce_range = config.per_channel, _reduce_range(config)
        result.max_weight = max_int8_weight(quantized)
        _saturation_note(result)
        _compare(original, target, config, result)
        if accept is not None:
            accept(original, quantized)
        os.replace(target, out)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return result


def _preprocess(src: Path, tmpdir: Path) -> Path:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    dst = tmpdir / "preprocessed.onnx"
    try:
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
    except Exception as exc:
        raise ModelError(f"quantization pre-processing failed ({first_line(exc)}); "
                         f"retry with --no-preprocess") from exc
    return dst


def _run_quantizer(src: Path, target: Path, config: QuantizeConfig) -> int:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # ORT's quantizer warns through the root logger: quiet it, then restore
    try:
        return _quantize(src, target, config)
    finally:
        root.setLevel(level)


def _quantize(src: Path, target: Path, config: QuantizeConfig) -> int:
    from onnxruntime import quantization as q

    common = dict(per_channel=config.per_channel, reduce_range=_reduce_range(config),
                  nodes_to_exclude=list(config.exclude) or None)
    if config.mode == "dynamic":
        q.quantize_dynamic(str(src), str(target), weight_type=q.QuantType.QInt8, **common)
        return 0
    reader = _Reader(src, config.data)
    method = {"minmax": q.CalibrationMethod.MinMax, "entropy": q.CalibrationMethod.Entropy,
              "percentile": q.CalibrationMethod.Percentile}[config.calibration]
    fmt = q.QuantFormat.QDQ if config.format == "qdq" else q.QuantFormat.QOperator
    try:
        q.quantize_static(str(src), str(target), reader, quant_format=fmt, calibrate_method=method,
                          activation_type=q.QuantType.QInt8, weight_type=q.QuantType.QInt8, **common)
    except DataError:
        raise
    except Exception as exc:
        if reader.count == 0:
            raise DataError(f"--data {config.data.path}: no calibration examples") from exc
        raise ModelError(f"static quantization failed: {first_line(exc)}") from exc
    if reader.count == 0:
        raise DataError(f"--data {config.data.path}: no calibration examples")
    return reader.count


def _feeds(original: onnx.ModelProto, config: QuantizeConfig):
    """The inputs the outputs are compared on: the data if given, else seeded random inputs."""
    if config.data is not None:
        for i, ex in enumerate(load_examples(original, config.data)):
            if i >= config.compare:
                return
            yield ex.feeds
        return
    session = make_session(original)
    for seed in range(min(config.compare, 4)):
        yield random_feeds(session, dict(config.shapes or {}), seed)


def _compare(original: onnx.ModelProto, target: Path, config: QuantizeConfig, result: QuantizeResult) -> None:
    before, after = make_session(original), make_session(str(target))
    diffs, means, agree = [], [], []
    for feeds in _feeds(original, config):
        a, b = before.run(None, feeds)[0], after.run(None, feeds)[0]
        d = np.abs(a.astype(np.float64) - b.astype(np.float64))
        diffs.append(float(d.max()) if d.size else 0.0)
        means.append(float(d.mean()) if d.size else 0.0)
        if a.ndim >= 1 and a.shape[-1] > 1:
            agree.append(float(np.mean(a.reshape(-1, a.shape[-1]).argmax(-1) == b.reshape(-1, b.shape[-1]).argmax(-1))))
    result.compared = len(diffs)
    result.compared_on = "examples from --data" if config.data is not None else "seeded random inputs"
    if diffs:
        result.max_abs_diff, result.mean_abs_diff = max(diffs), float(np.mean(means))
    if agree:
        result.argmax_agreement = float(np.mean(agree))


# weight-operand positions of ops that multiply int8 weights (DequantizeLinear: the quantized tensor)
_WEIGHT_INPUTS = {"DequantizeLinear": 0, "QLinearConv": 3, "QLinearMatMul": 3, "ConvInteger": 1, "MatMulInteger": 1}


def max_int8_weight(model: onnx.ModelProto) -> int | None:
    """Largest |q| of the int8 weight initializers the integer kernels multiply, None if none.
    At most 64 means two products of a u8 activation and adjacent weights fit the 16-bit sum
    of VPMADDUBSW (255 * 128 < 32767): no saturation on AVX2/AVX-512 CPUs without VNNI."""
    inits = {t.name: t for t in model.graph.initializer}
    found = None
    for node in model.graph.node:
        k = _WEIGHT_INPUTS.get(node.op_type)
        t = inits.get(node.input[k]) if k is not None and len(node.input) > k else None
        if t is None or t.data_type != onnx.TensorProto.INT8:
            continue
        v = onnx.numpy_helper.to_array(t)
        if v.size > 1:  # a scalar is a zero point or a broadcast constant, not a weight tensor
            found = max(found or 0, int(np.abs(v.astype(np.int16)).max()))
    return found


def _saturation_note(result: QuantizeResult) -> None:
    """Say when the outputs checked here may differ on another x86 CPU."""
    from ..core.machine import int8_saturates

    if result.max_weight is None or result.max_weight <= 64:
        return
    here = int8_saturates()
    where = ("this CPU lacks VNNI, so the comparison above includes it" if here else
             "this CPU has VNNI (or is not x86), so the comparison above does not show it")
    result.notes.append(f"8-bit weights (|w| up to {result.max_weight}): on x86 CPUs without VNNI int8 products "
                        f"can saturate and outputs differ; {where}. Drop --full-range for 7-bit weights that "
                        "give the same results on every CPU")


def _op_counts(model: onnx.ModelProto) -> dict:
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts
