"""Loading and saving models: clear errors on bad files, atomic writes, IR clamp, external data."""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from . import external
from ..errors import ModelError, UsageError

# Protobuf cannot serialise a message over 2 GiB; above this we switch to external data.
EXTERNAL_DATA_THRESHOLD = 1_800_000_000


def load_model(path: str | os.PathLike) -> onnx.ModelProto:
    """Read an ONNX file, including external data, or raise a one-line ModelError."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: no such file")
    if path.is_dir():
        raise ModelError(f"{path}: is a directory, expected an .onnx file")
    if path.stat().st_size == 0:
        raise ModelError(f"{path}: file is empty")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: not a valid ONNX protobuf ({_first_line(exc)})") from exc
    except Exception as exc:  # protobuf raises a variety of internal errors on garbage
        raise ModelError(f"{path}: not a valid ONNX protobuf ({_first_line(exc)})") from exc
    if model.ir_version > onnx.IR_VERSION:
        raise ModelError(f"{path}: IR version {model.ir_version} is newer than this onnx {onnx.__version__} reads "
                         f"(<= {onnx.IR_VERSION}) and onnxruntime runs (<= {max_ir_version()})")
    if not model.HasField("graph") or len(model.graph.node) == 0:
        raise ModelError(f"{path}: model has no graph nodes (truncated or not an ONNX model?)")
    for t in model.graph.initializer:
        if not _known_dtype(t.data_type):
            raise ModelError(f"{path}: initializer '{t.name}' has unknown data type {t.data_type}: the file is corrupt")
        problem = _tensor_size_problem(t)
        if problem:
            raise ModelError(f"{path}: initializer '{t.name}' {problem}: the file is corrupt")
    bad = _non_utf8_name(model.graph)
    if bad is not None:
        raise ModelError(f"{path}: a name in the graph is not valid UTF-8 ({bad!r}): the file is corrupt")
    if any(onnx.external_data_helper.uses_external_data(t)
           for t in onnx.external_data_helper._get_all_tensors(model)):
        _load_external(model, path)
    return model


def _known_dtype(data_type: int) -> bool:
    try:
        onnx.helper.tensor_dtype_to_np_dtype(data_type)
        return data_type != onnx.TensorProto.UNDEFINED
    except (KeyError, ValueError):
        return False


def _tensor_size_problem(t: onnx.TensorProto) -> str | None:
    """Raw bytes that do not fit dims x item size (a changed dim or type) break every later reader."""
    if any(d < 0 for d in t.dims):
        return f"has a negative dim {list(t.dims)}"
    if not t.HasField("raw_data") or t.ByteSize() > 64 << 20:  # huge tensors: do not copy them to check
        return None
    item = onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
    if t.data_type in (onnx.TensorProto.STRING,) or item == 0:
        return None
    expected = item
    for d in t.dims:
        expected *= d
    got = len(t.raw_data)
    if t.data_type in (onnx.TensorProto.INT4, onnx.TensorProto.UINT4) or got == expected:
        return None
    return f"holds {got} bytes but dims {list(t.dims)} x {item}-byte items need {expected}"


def _non_utf8_name(graph: onnx.GraphProto):
    """protobuf hands back `bytes` for a string field holding invalid UTF-8 (a flipped bit); every
    later join or format of names would then fail far from the cause."""
    names = [graph.name]
    for node in graph.node:
        names += [node.name, node.op_type, node.domain, *node.input, *node.output]
        names += [a.name for a in node.attribute]
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                bad = _non_utf8_name(sub)
                if bad is not None:
                    return bad
    names += [t.name for t in graph.initializer]
    names += [v.name for v in list(graph.input) + list(graph.output) + list(graph.value_info)]
    return next((n for n in names if not isinstance(n, str)), None)


def _load_external(model: onnx.ModelProto, path: Path) -> None:
    """Small external tensors are read in; big ones stay on disk (see external.py)."""
    def problem(tensor, message):
        raise ModelError(f"{path}: {message}")

    try:
        external.localize(model, path.parent, problem)
    except (OSError, ValueError, KeyError) as exc:  # unreadable file, garbage offset or length
        raise ModelError(f"{path}: cannot read external data ({_first_line(exc)})") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


@functools.lru_cache(maxsize=1)
def max_ir_version() -> int:
    """The highest IR version the installed onnxruntime loads, probed once with a one-node model.

    onnx 1.23 writes IR 14 by default while onnxruntime 1.31 refuses anything above 13, so we
    ask the runtime rather than trusting a table that goes stale with every release.
    """
    import onnxruntime as ort

    node = onnx.helper.make_node("Identity", ["x"], ["y"])
    vi = onnx.helper.make_tensor_value_info
    graph = onnx.helper.make_graph([node], "probe", [vi("x", onnx.TensorProto.FLOAT, [1])],
                                   [vi("y", onnx.TensorProto.FLOAT, [1])])
    for ir in range(onnx.IR_VERSION, 3, -1):
        model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 13)])
        model.ir_version = ir
        try:
            ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
            return ir
        except Exception:
            continue
    return 7


def clamp_ir_version(model: onnx.ModelProto) -> None:
    """Lower the IR version to what onnxruntime accepts (never raise it)."""
    if model.ir_version > max_ir_version():
        model.ir_version = max_ir_version()


def check_output_path(input_path: str | os.PathLike | None, output_path: str | os.PathLike) -> Path:
    """Reject an output that would overwrite the input or cannot be written, before any work."""
    out = Path(output_path)
    if input_path is not None and out.exists() and Path(input_path).exists():
        if os.path.samefile(out, input_path):
            raise UsageError(f"output {out} is the input file; choose another path")
    elif input_path is not None and out.resolve() == Path(input_path).resolve():
        raise UsageError(f"output {out} is the input file; choose another path")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.exists():
        raise UsageError(f"output directory {parent} does not exist")
    if not parent.is_dir():
        raise UsageError(f"output directory {parent} is not a directory")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"output directory {parent} is not writable")
    if out.is_dir():
        raise UsageError(f"output {out} is a directory")
    data = parent / (out.name + ".data")
    if input_path is not None and data.exists() and data.resolve() in _external_files(Path(input_path)):
        raise UsageError(f"output {out} would overwrite {data.name}, which holds the input's weights; "
                         f"choose another name")
    try:  # root passes os.access everywhere; a read-only filesystem only shows when we try
        tempfile.TemporaryFile(dir=parent, prefix=".onnxprune-probe-").close()
    except OSError as exc:
        raise UsageError(f"output directory {parent} is not writable ({exc.strerror or exc})") from None
    return out


def _external_files(path: Path) -> set[Path]:
    """The data files an ONNX file's external tensors live in (none if it cannot be read)."""
    try:
        model = onnx.load(str(path), load_external_data=False)
        return {(path.parent / external.source(t)[0]).resolve() for t in external.all_tensors(model)
                if external.is_external(t)}
    except Exception:
        return set()


def save_model(model: onnx.ModelProto, path: str | os.PathLike) -> list[Path]:
    """Write atomically: into a temporary folder beside the target, then rename into place.

    On any failure nothing is left at `path`. Models near the protobuf 2 GiB limit, and models
    whose big weights were left on disk when read, are written with their tensors in
    `<name>.data` beside the file. Returns the files written (the model first).
    """
    path = Path(path)
    clamp_ir_version(model)
    try:
        tmpdir = Path(tempfile.mkdtemp(prefix=".onnxprune-", dir=path.parent if str(path.parent) else "."))
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        tmp_model = tmpdir / path.name
        data_name = path.name + ".data"
        written = [path]
        if external.has_external(model):  # read with its weights left on disk: written the same way
            target = (path.parent / data_name).resolve()
            if any(Path(external.source(t)[0]) == target for t in external.all_tensors(model)
                   if external.is_external(t)):
                raise UsageError(f"output {path} would overwrite {target.name}, which holds the input's weights; "
                                 f"choose another name")
            external.write_external(model, tmp_model, data_name)
            os.replace(tmpdir / data_name, path.parent / data_name)
            written.append(path.parent / data_name)
        elif model.ByteSize() > EXTERNAL_DATA_THRESHOLD if _fits_bytesize(model) else True:
            onnx.save_model(model, str(tmp_model), save_as_external_data=True,
                            all_tensors_to_one_file=True, location=data_name, size_threshold=1024)
            os.replace(tmpdir / data_name, path.parent / data_name)
            written.append(path.parent / data_name)
        else:
            with open(tmp_model, "wb") as fh:
                fh.write(model.SerializeToString())
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp_model, path)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return written


def model_bytes(model: onnx.ModelProto) -> bytes:
    """Self-contained serialised model (weights kept on disk are read in; IR clamped as `save_model`
    does), for sending to another process or machine. Over 2 GiB is a one-line error."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    if external.has_external(copy):
        external.read_in(copy)
    clamp_ir_version(copy)
    if not _fits_bytesize(copy) or copy.ByteSize() >= 2**31:
        raise UsageError("a model over 2 GiB cannot be sent to another process as one message")
    return copy.SerializeToString()


def _fits_bytesize(model: onnx.ModelProto) -> bool:
    try:
        model.ByteSize()
        return True
    except Exception:
        return False


def fingerprint(model: onnx.ModelProto) -> str:
    """A hash of the graph's structure (ops, wiring, weight shapes), not of the weight values.

    A plan records it so that replaying a plan on a different model fails clearly.
    """
    h = hashlib.sha256()
    for node in model.graph.node:
        h.update(f"{node.op_type}|{','.join(node.input)}|{','.join(node.output)}\n".encode())
    for init in model.graph.initializer:
        h.update(f"{init.name}:{list(init.dims)}\n".encode())
    return h.hexdigest()[:16]
