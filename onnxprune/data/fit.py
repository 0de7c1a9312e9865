"""Fitting arrays to a model input: waveforms to `[B, T]`/`[B, 1, T]`, front-end features to
whatever layout the model wants (singleton dims squeezed/expanded, time windowed).

Everything here is shape arithmetic on one example, so it is easy to test and to explain in an
error message that names both shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from .config import DataError

from .audio import to_dtype


@dataclass(frozen=True)
class InputSpec:
    name: str
    dims: tuple            # int for a fixed dim, None for a symbolic one
    dtype: np.dtype


def input_specs(model: onnx.ModelProto, shapes: dict | None = None) -> list[InputSpec]:
    """The model's real inputs (not initializers); `shapes` (as from --shape) fixes symbolic dims."""
    inits = {t.name for t in model.graph.initializer}
    specs = []
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        t = vi.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in t.shape.dim)
        given = (shapes or {}).get(vi.name)
        if given is not None and len(given) == len(dims):
            dims = tuple(int(g) if g and g > 0 else d for g, d in zip(given, dims))
        specs.append(InputSpec(vi.name, dims, np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.elem_type))))
    return specs


def shape_text(dims) -> str:
    return "[" + ",".join("?" if d is None else str(d) for d in dims) + "]"


def is_waveform(spec: InputSpec) -> bool:
    d = spec.dims
    return len(d) == 2 or (len(d) == 3 and d[1] == 1)


def windows(n: int, size: int, hop: int):
    """Start offsets of windows of `size` over `n` samples; one (padded) window when n < size."""
    if n <= size:
        return [0]
    return list(range(0, n - size + 1, hop))


def crop_or_pad(x: np.ndarray, size: int, axis: int = 0, centre: bool = True) -> np.ndarray:
    """Centre-crop or zero-pad `x` along `axis` to `size`."""
    n = x.shape[axis]
    if n == size:
        return x
    if n > size:
        start = (n - size) // 2 if centre else 0
        return np.take(x, range(start, start + size), axis=axis)
    pad = [(0, 0)] * x.ndim
    before = (size - n) // 2 if centre else 0
    pad[axis] = (before, size - n - before)
    return np.pad(x, pad)


def waveform_feeds(samples: np.ndarray, spec: InputSpec, rate: int, window: float | None,
                   hop: float | None):
    """(start seconds, array) per example for a raw-waveform input `[B, T]` or `[B, 1, T]`.

    Fixed T: the clip centred and cropped/padded to T, or windows of T samples every `hop` when
    --window/--hop is given. Symbolic T: the whole clip, or windows of `window` seconds.
    """
    fixed = spec.dims[-1]
    size = None
    if window is not None:
        size = int(round(window * rate))
        if fixed is not None and size != fixed:
            raise DataError(f"--window {window}s is {size} samples at {rate} Hz but input '{spec.name}' "
                            f"{shape_text(spec.dims)} takes {fixed}")
    size = size or fixed
    step = int(round(hop * rate)) if hop is not None else size
    if step is not None and step <= 0:
        raise DataError(f"--hop {hop}s is less than one sample at {rate} Hz")
    lead = (1,) * (len(spec.dims) - 1)
    if size is None:
        yield 0.0, to_dtype(samples, spec.dtype).reshape(lead + (-1,))
        return
    if window is None and hop is None:
        yield 0.0, to_dtype(crop_or_pad(samples, size), spec.dtype).reshape(lead + (size,))
        return
    for start in windows(len(samples), size, step):
        chunk = crop_or_pad(samples[start:start + size], size, centre=False)
        yield start / rate, to_dtype(chunk, spec.dtype).reshape(lead + (size,))


def fit_features(x: np.ndarray, spec: InputSpec, source: str, seconds: float,
                 hop: float | None = None):
    """(start seconds, array) per example shaped for `spec` from the front-end output `x` of a
    `seconds`-long clip: singleton dims squeezed/expanded, and windows (every `hop` seconds,
    default one window) along the one axis where the front-end gives more frames than a fixed
    model dim.

    The first model dim is the batch (1 per example). Raises DataError naming both shapes when
    the element counts cannot be matched.
    """
    want = (1,) + tuple(spec.dims[1:])
    core_want = [d for d in want if d != 1]
    core_have = [d for d in x.shape if d != 1]
    sym = [i for i, d in enumerate(core_want) if d is None]

    def fail(why: str = ""):
        raise DataError(f"{source}: front-end output {shape_text(x.shape)} does not fit input "
                        f"'{spec.name}' {shape_text(spec.dims)}{why}")

    if len(core_have) != len(core_want):
        fail()
    flat = x.reshape(core_have)
    if len(sym) > 1:
        fail(" (more than one symbolic dim; fix them with --shape)")
    diff = [i for i, (h, w) in enumerate(zip(core_have, core_want)) if w is not None and h != w]
    if sym:
        if diff:
            fail()
        yield 0.0, flat.reshape(_expand(want, flat.shape)).astype(spec.dtype, copy=False)
        return
    if not diff:
        yield 0.0, flat.reshape(want).astype(spec.dtype, copy=False)
        return
    if len(diff) > 1:
        fail()
    axis, size = diff[0], core_want[diff[0]]
    frames = core_have[axis]
    if frames < size:
        fail(f" ({frames} frames, the model takes {size}: clip too short)")
    per_second = frames / seconds
    step = size if hop is None else max(1, int(round(hop * per_second)))
    for start in windows(frames, size, step):
        part = np.take(flat, range(start, start + size), axis=axis)
        yield start / per_second, part.reshape(want).astype(spec.dtype, copy=False)


def _expand(want: tuple, core: tuple) -> tuple:
    """`want` with its one symbolic dim taken from `core` (the non-singleton dims in order)."""
    it = iter(core)
    return tuple(next(it) if d != 1 else 1 for d in want)
