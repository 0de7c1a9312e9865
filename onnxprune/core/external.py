"""Big weights that stay on disk.

A model read from a file with external data keeps its big tensors (>= LAZY_BYTES) external: each
keeps its reference, with the location made absolute, so the in-memory model knows where its data
lives (it is no longer a valid file by itself: `io.save_model` writes it out with relative
locations). Reading such a weight maps the file read-only; a new big weight (a pruned or zeroed
copy) is spilled to a per-process temporary folder instead of being held in memory. onnxruntime
maps them itself (`for_runtime`), the onnx checker gets a copy whose data files are sparse
placeholders.

Why: copying protobufs that hold the weights made a 2.15 GB model peak at 17 GB during `prune`
(constant folding, pruned and reference rewrites, one serialised copy per session). With the
weights on disk every copy of the model is a few kilobytes, and memory is bounded by the pages
onnxruntime and the rewrite touch.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.external_data_helper import ExternalDataInfo

LAZY_BYTES = 1 << 20  # smaller external tensors are read in: shape constants must be visible to inference
ALIGN = 4096  # offsets of written tensors are page-aligned so that readers can map them
_COPY_CHUNK = 64 << 20

# dtypes whose external bytes are exactly numpy's little-endian layout, so they can be mapped
_MAPPABLE = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.INT8,
             onnx.TensorProto.INT16, onnx.TensorProto.INT32, onnx.TensorProto.INT64, onnx.TensorProto.UINT8,
             onnx.TensorProto.UINT16, onnx.TensorProto.UINT32, onnx.TensorProto.UINT64, onnx.TensorProto.BOOL}


def is_external(tensor: onnx.TensorProto) -> bool:
    return tensor.data_location == onnx.TensorProto.EXTERNAL


def all_tensors(model: onnx.ModelProto):
    """Initializers and attribute tensors of every graph, subgraphs included."""
    return onnx.external_data_helper._get_all_tensors(model)


def has_external(model: onnx.ModelProto) -> bool:
    return any(is_external(t) for t in all_tensors(model))


def external_bytes(model: onnx.ModelProto) -> int:
    return sum(source(t)[2] for t in all_tensors(model) if is_external(t))


def nbytes(tensor: onnx.TensorProto) -> int:
    """Bytes of the tensor's values as stored raw (packed 4-bit types round up)."""
    count = int(np.prod(tensor.dims, dtype=np.int64))
    if tensor.data_type in (onnx.TensorProto.INT4, onnx.TensorProto.UINT4):
        return (count + 1) // 2
    return count * onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize


def source(tensor: onnx.TensorProto) -> tuple[str, int, int]:
    """(file, offset, length) of an external tensor; length defaults to the tensor's raw size."""
    with warnings.catch_warnings():  # unknown keys (a writer's own, or damage) are ignored, as by onnx
        warnings.simplefilter("ignore")
        info = ExternalDataInfo(tensor)
    length = int(info.length) if info.length else nbytes(tensor)
    return info.location, int(info.offset or 0), length


def _set_source(tensor: onnx.TensorProto, location: str, offset: int, length: int) -> None:
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    del tensor.external_data[:]
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value


def localize(model: onnx.ModelProto, base: Path, problem) -> None:
    """Make a just-loaded model's external tensors usable: small ones are read in, big ones get
    absolute locations. `problem(tensor, message)` raises the caller's error for a missing file or
    one too short for the bytes a tensor claims."""
    for tensor in all_tensors(model):
        if not is_external(tensor):
            continue
        location, offset, length = source(tensor)
        path = (base / location).resolve()
        if Path(location).is_absolute() or not path.is_relative_to(base.resolve()):
            # as onnx and onnxruntime: a model must not make its reader open files outside its folder
            problem(tensor, f"external data location '{location}' of tensor '{tensor.name}' is outside the "
                            f"model's folder")
        if offset < 0 or length < 0:
            problem(tensor, f"tensor '{tensor.name}' has a negative external data offset or length")
        if not path.is_file():
            problem(tensor, f"external data file '{location}' for tensor '{tensor.name}' is missing")
        if offset + length > path.stat().st_size:
            problem(tensor, f"external data file '{location}' is too short for tensor '{tensor.name}' "
                            f"(needs bytes {offset}..{offset + length}, has {path.stat().st_size})")
        if length != nbytes(tensor):
            problem(tensor, f"tensor '{tensor.name}' has {length} bytes of external data but dims "
                            f"{list(tensor.dims)} need {nbytes(tensor)}: the file is corrupt")
        _set_source(tensor, str(path), offset, length)
        if length < LAZY_BYTES:
            _read_in(tensor)


def read(tensor: onnx.TensorProto) -> np.ndarray:
    """The tensor's value; an external one is a read-only map of its file (writing to it raises)."""
    if not is_external(tensor):
        return numpy_helper.to_array(tensor)
    location, offset, length = source(tensor)
    if tensor.data_type in _MAPPABLE:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
        return np.memmap(location, dtype=np.dtype(dtype).newbyteorder("<"), mode="r", offset=offset,
                         shape=tuple(tensor.dims))
    with open(location, "rb") as fh:  # bfloat16, float8, 4-bit: let onnx decode the bytes
        fh.seek(offset)
        inline = onnx.TensorProto(name=tensor.name, data_type=tensor.data_type, dims=tensor.dims,
                                  raw_data=fh.read(length))
    return numpy_helper.to_array(inline)


def read_in(model: onnx.ModelProto) -> None:
    """Put every external tensor's bytes into the model (for tools that need one self-contained
    file, such as onnxruntime's quantization pre-processing)."""
    for tensor in all_tensors(model):
        if is_external(tensor):
            _read_in(tensor)


def _read_in(tensor: onnx.TensorProto) -> None:
    location, offset, length = source(tensor)
    with open(location, "rb") as fh:
        fh.seek(offset)
        data = fh.read(length)
    tensor.data_location = onnx.TensorProto.DEFAULT
    del tensor.external_data[:]
    tensor.raw_data = data


# ---- spilling new big weights ------------------------------------------------------------------
_spill_dir: str | None = None
_scratch: list[list[str]] = []  # open `scratch()` scopes, innermost last: the files spilled in each


def _spill_folder() -> str:
    global _spill_dir
    if _spill_dir is None:
        _spill_dir = tempfile.mkdtemp(prefix="onnxprune-weights-")
        atexit.register(shutil.rmtree, _spill_dir, True)
    return _spill_dir


def spill(array: np.ndarray) -> np.ndarray:
    """Write `array` to its own file in the spill folder and return a read-only map of it (marked,
    so that `make_tensor` refers to the file instead of writing it again)."""
    array = np.ascontiguousarray(array)
    fd, path = tempfile.mkstemp(suffix=".bin", dir=_spill_folder())
    with os.fdopen(fd, "wb") as fh:
        array.tofile(fh)
    if _scratch:
        _scratch[-1].append(path)
    mapped = np.memmap(path, dtype=array.dtype, mode="r", shape=array.shape) if array.size else array
    if array.size:
        mapped._onnxprune_spilled = path
    return mapped


@contextlib.contextmanager
def scratch():
    """Spill files made inside are deleted on exit: for candidate models that are built, measured
    and dropped (a search over a 2 GB model would otherwise leave gigabytes per candidate until the
    process ends). A model built inside must not be used after it."""
    files: list[str] = []
    _scratch.append(files)
    try:
        yield
    finally:
        _scratch.remove(files)
        for path in files:
            with contextlib.suppress(OSError):
                os.remove(path)


def make_tensor(array: np.ndarray, name: str, *, on_disk: bool) -> onnx.TensorProto:
    """A TensorProto for `array`; with `on_disk`, a big one refers to a spill file (the one it was
    spilled to already, or a new one) instead of holding the bytes."""
    path = getattr(array, "_onnxprune_spilled", None)
    if path is None and on_disk and array.nbytes >= LAZY_BYTES and array.dtype != object:
        array = spill(array)
        path = getattr(array, "_onnxprune_spilled", None)
    if path is None:
        return numpy_helper.from_array(np.asarray(array), name)
    tensor = onnx.TensorProto(name=name, dims=list(array.shape),
                              data_type=onnx.helper.np_dtype_to_tensor_dtype(array.dtype))
    _set_source(tensor, path, 0, array.nbytes)
    return tensor


# ---- handing the model to onnxruntime and the checker -------------------------------------------
def for_runtime(model: onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    """(copy, folder) for an onnxruntime session loaded from bytes with the session config entry
    `session.model_external_initializers_file_folder_path` = folder: locations are made relative
    to the filesystem root, which every data file is under. onnxruntime then maps the files, as it
    does for a model loaded from a path (measured: no copy of the weights in memory, with
    prepacking off), while its check that external data stays inside the model's folder holds.
    Tensors on another drive than the first (Windows) are read into the copy."""
    out = _copy(model)
    root = None
    for tensor in all_tensors(out):
        if not is_external(tensor):
            continue
        location, offset, length = source(tensor)
        anchor = Path(location).anchor
        root = root or anchor
        if anchor == root:
            _set_source(tensor, str(Path(location).relative_to(anchor)), offset, length)
        else:
            tensor.CopyFrom(numpy_helper.from_array(np.asarray(read(tensor)), tensor.name))
    return out, root or os.sep


def prepare_session(model: onnx.ModelProto, opts, *, prepack: bool = False) -> onnx.ModelProto:
    """The model to serialise for an onnxruntime session with options `opts`: unchanged, or with
    weights on disk the `for_runtime` copy, its folder set in `opts`. prepack=False (checks, not
    timings) keeps the weights mapped; prepacking would copy every packed weight into memory."""
    if not has_external(model):
        return model
    model, folder = for_runtime(model)
    opts.add_session_config_entry("session.model_external_initializers_file_folder_path", folder)
    if not prepack:
        opts.add_session_config_entry("session.disable_prepacking", "1")
    return model


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


@contextlib.contextmanager
def placeholder_copy(model: onnx.ModelProto):
    """A path to a copy of the model whose external locations point at sparse files of the right
    size in a temporary folder: enough for the checker, which only checks that they exist."""
    copy = _copy(model)
    with tempfile.TemporaryDirectory(prefix="onnxprune-check-") as tmp:
        sizes: dict[str, int] = {}
        names: dict[str, str] = {}
        for tensor in all_tensors(copy):
            if is_external(tensor):
                location, offset, length = source(tensor)
                names.setdefault(location, f"d{len(names)}.bin")
                sizes[names[location]] = max(sizes.get(names[location], 0), offset + length)
                _set_source(tensor, names[location], offset, length)
        for name, size in sizes.items():
            with open(os.path.join(tmp, name), "wb") as fh:
                fh.truncate(size)
        path = os.path.join(tmp, "model.onnx")
        with open(path, "wb") as fh:
            fh.write(copy.SerializeToString())
        yield path


def write_external(model: onnx.ModelProto, path: Path, data_name: str) -> None:
    """Write `model` at `path` with every external tensor's bytes copied (in chunks, never whole
    tensors in memory) into `data_name` beside it, at page-aligned offsets."""
    out = _copy(model)
    with open(path.parent / data_name, "wb") as data:
        for tensor in all_tensors(out):
            if not is_external(tensor):
                continue
            location, offset, length = source(tensor)
            start = -(-data.tell() // ALIGN) * ALIGN
            data.write(b"\0" * (start - data.tell()))
            with open(location, "rb") as src:
                src.seek(offset)
                left = length
                while left:
                    chunk = src.read(min(left, _COPY_CHUNK))
                    if not chunk:
                        raise OSError(f"external data of '{tensor.name}' ends early in {location}")
                    data.write(chunk)
                    left -= len(chunk)
            _set_source(tensor, data_name, start, length)
        data.flush()
        os.fsync(data.fileno())
    with open(path, "wb") as fh:
        fh.write(out.SerializeToString())
        fh.flush()
        os.fsync(fh.fileno())


def tensor_bytes(t: onnx.TensorProto) -> int:
    """In-model bytes of a tensor: its values' size from the dims where they are held in the
    model (protobuf's ByteSize encodes the message each time: 2.5 ms for a 4 MB weight, a
    second over a ResNet-50), ByteSize for strings and for references to external data."""
    if t.data_type == onnx.TensorProto.STRING or t.data_location == onnx.TensorProto.EXTERNAL:
        return t.ByteSize()
    return int(np.prod(t.dims, dtype=np.int64)) * onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize


HUGE_BYTES = 1_800_000_000  # protobuf cannot serialise 2 GiB: shape inference and ORT need a lighter copy


def is_huge(model: onnx.ModelProto) -> bool:
    return sum(tensor_bytes(t) for t in model.graph.initializer) > HUGE_BYTES


def without_big_weights(model: onnx.ModelProto, limit: int = 1 << 20) -> onnx.ModelProto:
    """The model with every initializer over `limit` bytes turned into a graph input of the same
    type and shape: enough for shape inference and shape probing, without copying gigabytes."""
    light = onnx.ModelProto()
    for name in ("ir_version", "producer_name", "producer_version", "domain", "model_version"):
        setattr(light, name, getattr(model, name))
    light.opset_import.extend(model.opset_import)
    light.functions.extend(model.functions)
    g, src = light.graph, model.graph
    g.name = src.name
    g.node.extend(src.node)
    g.output.extend(src.output)
    g.value_info.extend(src.value_info)
    inits = {t.name for t in src.initializer}
    g.input.extend(vi for vi in src.input if vi.name not in inits)
    for t in src.initializer:
        if tensor_bytes(t) > limit:
            g.input.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
        else:
            g.initializer.append(t)
    return light
