"""`--feeds MODULE:FUNCTION`: a Python callable that builds the feeds itself.

Contract (README "Calibration data"):

    fn(audio: np.ndarray, sample_rate: int, model_inputs: list[onnxruntime.NodeArg], *, run=None)
        -> dict[str, np.ndarray] | Iterable[dict[str, np.ndarray]]

`audio` is mono float32 in [-1, 1] at `sample_rate`. One dict is one example; an iterable (e.g. a
generator) gives several. A function that declares a `run` parameter also receives
`run(feeds) -> dict[output name, np.ndarray]`, which runs the original model, so a streaming
model can carry its state (LSTM h/c, silero's `state`) from one chunk's outputs into the next
chunk's feeds. `MODULE` is an importable module or a path to a .py file.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from pathlib import Path

import numpy as np
from .config import DataError



def load_callable(spec: str):
    module_name, sep, func_name = spec.rpartition(":")
    if not sep or not module_name or not func_name:
        raise DataError(f"--feeds {spec}: expected MODULE:FUNCTION or path/to/file.py:FUNCTION")
    try:
        if module_name.endswith(".py") or "/" in module_name or "\\" in module_name:
            path = Path(module_name)
            if not path.is_file():
                raise DataError(f"--feeds {spec}: no such file {path}")
            name = f"onnxprune_feeds_{path.stem}"
            mod_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(mod_spec)
            sys.modules[name] = module
            mod_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"--feeds {spec}: cannot import {module_name} ({type(exc).__name__}: {exc})") from None
    fn = getattr(module, func_name, None)
    if not callable(fn):
        raise DataError(f"--feeds {spec}: {module_name} has no function {func_name}")
    return fn


class FeedsCallable:
    def __init__(self, spec: str, session):
        self.spec = spec
        self.fn = load_callable(spec)
        self.session = session
        self.inputs = session.get_inputs()
        self.names = {i.name for i in self.inputs}
        try:
            params = inspect.signature(self.fn).parameters
        except (TypeError, ValueError):
            params = {}
        self.wants_run = "run" in params

    def _run(self, feeds: dict) -> dict:
        names = [o.name for o in self.session.get_outputs()]
        return dict(zip(names, self.session.run(None, feeds)))

    def __call__(self, audio: np.ndarray, rate: int, source: str):
        """Yield validated feed dicts for one clip; errors name the callable and the file."""
        kwargs = {"run": self._run} if self.wants_run else {}
        try:
            result = self.fn(audio, rate, self.inputs, **kwargs)
            items = [result] if isinstance(result, dict) else result
            for feeds in items:
                yield self._check(feeds, source)
        except DataError:
            raise
        except Exception as exc:
            first = (str(exc).splitlines() or [""])[0][:200]
            raise DataError(f"--feeds {self.spec} failed on {source} ({type(exc).__name__}: {first})") from None

    def _check(self, feeds, source: str) -> dict:
        if not isinstance(feeds, dict):
            raise DataError(f"--feeds {self.spec} on {source}: returned {type(feeds).__name__}, expected a dict of feeds")
        unknown = [k for k in feeds if k not in self.names]
        missing = [n for n in self.names if n not in feeds]
        if unknown or missing:
            raise DataError(f"--feeds {self.spec} on {source}: feeds {sorted(feeds)} do not match model inputs "
                            f"{sorted(self.names)}")
        return {k: np.asarray(v) for k, v in feeds.items()}
