"""Shared CLI plumbing: our errors become one line and an exit code; every run ends with a
status line. A traceback appears only with -v."""

from __future__ import annotations

import contextlib
import functools
import json
import sys
import time
import traceback
from pathlib import Path

import click

from ..bench.report import human, table  # noqa: F401  (re-exported for the commands)
from ..errors import OnnxpruneError


def shape_option(f):
    return click.option("--shape", "shapes", multiple=True, metavar="NAME:D1,D2,...",
                        help="Concrete dims for an input with symbolic dims (repeatable).")(f)


def input_option(f):
    return click.option("--input", "inputs", multiple=True, metavar="NAME=V1[,V2...]",
                        help="Feed these values to an input instead of seeded random ones, e.g. the sample "
                             "rate that selects a branch (--input sr=16000; repeatable).")(f)


def verbose_option(f):
    return click.option("-v", "--verbose", is_flag=True, help="Show tracebacks and details.")(f)


def run_command(name: str):
    """Wrap a command body: map OnnxpruneError to its exit code, print the closing status line."""

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            verbose = kwargs.get("verbose", False)
            start = time.perf_counter()
            to_stdout = [k for k in STDOUT_OPTIONS if kwargs.get(k) == "-"]
            try:
                if len(to_stdout) > 1:
                    from ..errors import UsageError

                    raise UsageError("only one report can go to stdout (-)")
                if to_stdout:  # stdout carries the report alone: our lines go to stderr
                    _STDOUT.append(sys.stdout)
                    try:
                        with contextlib.redirect_stdout(sys.stderr):
                            status = fn(*args, **kwargs)
                    finally:
                        _STDOUT.pop()
                else:
                    status = fn(*args, **kwargs)
            except OnnxpruneError as exc:
                if verbose:
                    traceback.print_exc()
                click.echo(f"error: {exc}", err=True)
                _status(name, "FAILED", start)
                sys.exit(exc.exit_code)
            except click.exceptions.Exit:
                raise
            except (KeyboardInterrupt, click.Abort):
                click.echo("error: interrupted", err=True)
                sys.exit(130)
            except Exception as exc:  # a bug of ours: still one line unless -v
                if verbose:
                    traceback.print_exc()
                first = str(exc).splitlines()[0][:200] if str(exc) else ""
                click.echo(f"error: internal error {type(exc).__name__}: {first} (rerun with -v for details)", err=True)
                _status(name, "FAILED", start)
                sys.exit(1)
            _status(name, status or "PASSED", start)
            if status == "FAILED":
                sys.exit(1)

        return wrapper

    return deco


def _status(name: str, status: str, start: float) -> None:
    argv = " ".join(sys.argv[1:])
    click.echo(f"{status} | onnxprune {name} | {time.perf_counter() - start:.2f}s | {argv}", err=True)


def write_json(path: str, data) -> None:
    write_text(path, json.dumps(data, indent=1, default=str) + "\n")


def write_text(path: str, text: str) -> None:
    """Write a report as users expect: `-` is stdout (the command's own lines then go to stderr,
    see run_command); an existing symlink is followed and a device or FIFO written through, never
    replaced; a regular file is replaced atomically keeping its mode; a new file gets the umask's."""
    import os
    import tempfile

    if str(path) == "-":
        out = _STDOUT[-1] if _STDOUT else sys.stdout
        out.write(text)
        out.flush()
        return
    target = Path(os.path.realpath(path))
    if target.exists() and not target.is_file():  # /dev/stdout, a FIFO, a device: write into it
        with open(target, "w") as fh:
            fh.write(text)
        return
    mode = target.stat().st_mode & 0o7777 if target.exists() else 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=".onnxprune-", dir=target.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    import os

    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_STDOUT: list = []   # the real stdout while a report goes to `-`
STDOUT_OPTIONS = ("json_path", "report", "md_path")


def gate_options(f):
    """--min-snr / --max-drop on prune and quantize: refuse a result too far from the original."""
    f = click.option("--max-drop", type=float, metavar="POINTS",
                     help="Refuse (exit 1, nothing written) a result whose top-1 agreement with the original "
                          "falls more than this many points below 100.")(f)
    return click.option("--min-snr", type=float, metavar="DB",
                        help="Refuse (exit 1, nothing written) a result whose SNR vs the original's outputs "
                             "is below this many dB.")(f)


def describe_written(files) -> str:
    """'out.onnx (1.2MB)', or with its weights beside it 'out.onnx (1.2GB, weights in out.onnx.data)'."""
    size = sum(Path(f).stat().st_size for f in files)
    beside = f", weights in {Path(files[1]).name}" if len(files) > 1 else ""
    return f"{files[0]} ({human(size)}B{beside})"
