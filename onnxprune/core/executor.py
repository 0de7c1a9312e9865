"""Map a function over work items: the seam where a distributed backend plugs in.

`fn(context, item)` is a module-level function; `context` is what every item shares — often a
recipe (model bytes and options) whose `materialize()` builds the live objects once per process
(`key` names it). `LocalExecutor` runs items here in order; `distributed.RayExecutor` has the
same methods and runs them as Ray tasks. Either way an exception raised for one item becomes that
item's `Outcome.error` (one line) and the others still run.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from ..errors import UsageError


@dataclass
class Outcome:
    index: int
    item: Any
    value: Any = None
    error: str | None = None          # one line; None when the item succeeded
    where: dict | None = None         # {"hostname", "pid", "node"} of the process that ran it
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


_cache: dict[str, Any] = {}


def materialized(context):
    """The live objects behind a context, built once per process (keyed by `context.key`)."""
    if not hasattr(context, "materialize"):
        return context
    if context.key not in _cache:
        _cache.clear()  # one context at a time: a worker serves one search, then the next
        _cache[context.key] = context.materialize()
    return _cache[context.key]


def here() -> dict:
    return {"hostname": socket.gethostname(), "pid": os.getpid(), "node": "local"}


def first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:300]


class LocalExecutor:
    """Items one after another in this process."""

    slots = 1

    def __init__(self, *, progress=None):
        self.progress = progress

    def map(self, fn: Callable, items: Iterable, *, context=None, resources: dict | None = None,
            label: Callable[[Any], str] = str, title: str = "", quiet: bool = False) -> Iterator[Outcome]:
        items = list(items)
        progress = None if quiet else self.progress
        if progress:
            progress.start(len(items), title)
        for i, item in enumerate(items):
            out, start = Outcome(i, item, where=here()), time.perf_counter()
            try:
                out.value = fn(materialized(context), item)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:
                out.error = first_line(exc)
            out.seconds = time.perf_counter() - start
            if progress:
                progress.item(label(item), out)
            yield out
        if progress:
            progress.finish()

    def map_values(self, fn: Callable, items: Iterable, *, context=None, resources: dict | None = None,
                   label: Callable[[Any], str] = str, title: str = "", quiet: bool = False) -> list:
        return values_or_raise(self.map(fn, items, context=context, resources=resources, label=label, title=title,
                                        quiet=quiet))


def collect(outcomes: Iterable[Outcome]) -> list[Outcome]:
    """Outcomes put back in item order."""
    return sorted(outcomes, key=lambda o: o.index)


def values_or_raise(outcomes: Iterable[Outcome]) -> list:
    """Item-ordered values; the first failure becomes one UsageError line (for work whose parts
    are all needed, such as one search's sensitivity table)."""
    ordered = collect(outcomes)
    for out in ordered:
        if not out.ok:
            raise UsageError(f"task for {out.item!r} failed: {out.error}")
    return [out.value for out in ordered]
