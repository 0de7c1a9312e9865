"""Latency measured on the target device: every timing runs as a Ray task pinned to a custom
resource (`ray start ... --resources '{"device:pi5": 1}'`) while scoring and rewriting stay on
the host. With one unit of the resource per device, its timings never overlap one another.

The timings are the same code as a local run (`bench.latency.time_interleaved`: rotated
round-robin; `search.latency_model.time_rounds`: paired rounds), so the statistics are the same;
only the machine changes, and every report names it (hostname, pid, CPU, onnxruntime version, EP).
Models travel as bytes; nothing is read from a shared filesystem.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import onnx

from ..errors import UsageError
from .executor import RayExecutor, where


def device_info(provider: str) -> dict:
    """The machine a timing ran on, as the report prints it."""
    import onnxruntime as ort

    from ..bench.evaluate import BenchConfig, machine_info

    info = machine_info(provider, BenchConfig())
    return {**where(), "cpu": info["cpu"], "cores": info["cores"], "system": info["system"],
            "onnxruntime": ort.__version__, "providers_available": ort.get_available_providers(), "provider": provider}


def _info_task(_context, provider):
    return device_info(provider)


def _rounds_task(_context, job):
    """On the device: `time_rounds` over models sent as bytes (the latency model's timing)."""
    from ..search.latency_model import time_rounds

    models = {k: onnx.ModelProto.FromString(b) for k, b in job["models"].items()}
    return {"times": time_rounds(models, job["feeds"], **job["options"]), "device": device_info(job["options"]["provider"])}


def _bench_task(_context, job):
    """On the device: sessions, interleaved timing (and peak memory) of model files sent as bytes."""
    from ..bench import memory
    from ..bench.latency import TimingPlan, time_interleaved
    from ..bench.providers import create_session

    cfg, provider = job["cfg"], job["provider"]
    with tempfile.TemporaryDirectory(prefix="onnxprune-device-") as tmp:
        paths = []
        for i, (name, data) in enumerate(zip(job["names"], job["files"])):
            path = Path(tmp) / f"{i}.onnx"
            path.write_bytes(data)
            paths.append(str(path))
        sessions = [create_session(p, provider, threads=cfg.threads, inter_threads=cfg.inter_threads,
                                   opt_level=cfg.opt_level, model_name=n, spin=cfg.spin)
                    for p, n in zip(paths, job["names"])]
        run_fns = [_runner(s, feeds) for s, feeds in zip(sessions, job["feed_sets"])]
        times = time_interleaved(run_fns, TimingPlan(cfg.warmup, None if cfg.duration else cfg.runs, cfg.duration))
        mem = None
        if cfg.memory:
            mem = [memory.measure(p, provider=provider, shapes=s, threads=cfg.threads, inter_threads=cfg.inter_threads,
                                  opt_level=cfg.opt_level, seed=cfg.seed, spin=cfg.spin)
                   for p, s in zip(paths, job["shapes"])]
    return {"times": times, "memory": mem, "device": device_info(provider)}


def _runner(session, feeds):
    def run(i):
        session.run(None, feeds[i % len(feeds)])
    return run


class DeviceTimer:
    """Timings on the worker that holds `resource`. Call it as `time_rounds` (latency model) or
    use `bench` (run_bench's timing hook); `info` is the device, asked once on creation."""

    def __init__(self, executor: RayExecutor, resource: str | None, provider: str = "CPUExecutionProvider"):
        """resource None: any one worker of the cluster (`bench --ray` without `--on`)."""
        if resource is not None:
            executor.cluster.require(resource)
        self.executor, self.resource = executor, {resource: 1} if resource else None
        self.name = resource or "a Ray worker"
        self.info = self._run(_info_task, provider)
        self.calls = 0

    def _run(self, fn, job):
        out = self.executor.run(fn, job, resources=self.resource)
        if not out.ok:
            raise UsageError(f"timing on {self.name} failed: {out.error}")
        return out.value

    @property
    def key(self) -> list:
        """What identifies the device for the latency cache."""
        return [self.name, self.info["hostname"], self.info["cpu"], self.info["onnxruntime"]]

    def __call__(self, models: dict, feeds: dict, **options) -> dict[str, list[float]]:
        """Same contract as latency_model.time_rounds, run on the device."""
        from ..core.io import model_bytes

        job = {"models": {k: model_bytes(m) for k, m in models.items()}, "feeds": feeds, "options": options}
        out = self._run(_rounds_task, job)
        self.info, self.calls = out["device"], self.calls + 1
        return out["times"]

    def bench(self, loaded, feed_sets, cfg, provider) -> tuple[list, list | None, dict]:
        """run_bench's timing hook: (per-model seconds, per-model memory or None, device)."""
        import dataclasses

        from ..core import external

        files = []
        for m in loaded:
            if external.has_external(m.proto):
                raise UsageError(f"{m.path}: weights in external files are not sent to devices yet")
            files.append(Path(m.path).read_bytes())
        job = {"files": files, "names": [m.name for m in loaded], "feed_sets": feed_sets, "shapes": [m.shapes for m in loaded],
               "cfg": dataclasses.replace(cfg, data=None, task=None), "provider": provider}
        out = self._run(_bench_task, job)
        self.info, self.calls = out["device"], self.calls + 1
        return out["times"], out["memory"], out["device"]

