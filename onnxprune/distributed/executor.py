"""`RayExecutor`: the `core.executor` seam run as Ray tasks.

The context is put in the object store once and shared by every task (a recipe with the model's
bytes: no shared filesystem is assumed); workers import `fn` from their own onnxprune and build
the context's live objects once per process. Results stream back as tasks finish, each saying
where it ran. A worker that dies is retried (`retries`, Ray's `max_retries`); an exception raised
by `fn` is not retried (it would fail again) and comes back as that item's error.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Iterator

from ..core.executor import Outcome, first_line, here, materialized, values_or_raise
from .cluster import Cluster, import_ray

RETRIES = 2


def where() -> dict:
    import ray

    return {**here(), "node": ray.get_runtime_context().get_node_id()[:12]}


def _call(fn, context, item):
    start = time.perf_counter()
    value = fn(materialized(context), item)
    return value, where(), time.perf_counter() - start


_remote = None


def _remote_call():
    global _remote
    if _remote is None:
        _remote = import_ray().remote(_call)
    return _remote


class RayExecutor:
    """Runs `fn(context, item)` for every item as a Ray task; `resources` pins them (device:pi5)."""

    def __init__(self, cluster: Cluster, *, retries: int = RETRIES, progress=None):
        self.cluster, self.retries, self.progress = cluster, retries, progress
        self.tasks = 0
        self._shared: tuple = (None, None)  # (context key, object ref): a search's context is put once

    @property
    def slots(self) -> int:
        """How many tasks can run at once: the cluster's CPUs."""
        return max(1, self.cluster.cpus())

    def map(self, fn: Callable, items: Iterable, *, context=None, resources: dict | None = None,
            label: Callable[[Any], str] = str, title: str = "", quiet: bool = False) -> Iterator[Outcome]:
        """Outcomes in completion order (each names its item's index)."""
        ray = import_ray()
        items = list(items)
        options = dict(max_retries=self.retries, retry_exceptions=False)
        if resources:
            options["resources"] = dict(resources)
        remote, shared = _remote_call().options(**options), self._put(context)
        pending = {remote.remote(fn, shared, item): i for i, item in enumerate(items)}
        self.tasks += len(pending)
        progress = None if quiet else self.progress
        if progress:
            progress.start(len(items), title)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                i = pending.pop(ref)
                out = Outcome(i, items[i])
                try:
                    out.value, out.where, out.seconds = ray.get(ref)
                except Exception as exc:  # the task raised, or its worker died more than `retries` times
                    out.error = describe_failure(exc, self.retries)
                if progress:
                    progress.item(label(items[i]), out)
                yield out
        if progress:
            progress.finish()

    def _put(self, context):
        key = getattr(context, "key", None)
        if key is None or self._shared[0] != key:
            self._shared = (key, import_ray().put(context))
        return self._shared[1]

    def map_values(self, fn: Callable, items: Iterable, *, context=None, resources: dict | None = None,
                   label: Callable[[Any], str] = str, title: str = "", quiet: bool = False) -> list:
        return values_or_raise(self.map(fn, items, context=context, resources=resources, label=label, title=title,
                                        quiet=quiet))

    def run(self, fn: Callable, item, *, context=None, resources: dict | None = None) -> Outcome:
        """One task (e.g. a timing on the device), waited for."""
        return next(iter(self.map(fn, [item], context=context, resources=resources, quiet=True)))


def describe_failure(exc: BaseException, retries: int) -> str:
    """One line: the task's own exception (unwrapped from Ray's), or why its worker was lost."""
    import ray.exceptions as rex

    cause = getattr(exc, "cause", None)
    if isinstance(exc, rex.RayTaskError) and cause is not None:
        return first_line(cause)
    if isinstance(exc, (rex.WorkerCrashedError, rex.NodeDiedError)):
        return f"worker lost {retries + 1} times ({type(exc).__name__})"
    return first_line(exc)
