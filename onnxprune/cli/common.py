"""Shared CLI plumbing: our errors become one line and an exit code; every run ends with a
status line. A traceback appears only with -v."""

from __future__ import annotations

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
            try:
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
    from pathlib import Path
    import os
    import tempfile

    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=".onnxprune-", dir=target.parent if str(target.parent) else ".")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=1, default=str)
        fh.write("\n")
    os.replace(tmp, target)


def describe_written(files) -> str:
    """'out.onnx (1.2MB)', or with its weights beside it 'out.onnx (1.2GB, weights in out.onnx.data)'."""
    size = sum(Path(f).stat().st_size for f in files)
    beside = f", weights in {Path(files[1]).name}" if len(files) > 1 else ""
    return f"{files[0]} ({human(size)}B{beside})"
