"""Run a benchmark: sessions for every model on one EP, inputs (seeded or from --data), interleaved
timing, static figures, peak memory, fidelity to the first model and task metrics."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data import DataConfig, DataError, load_examples
from ..errors import ModelError, UsageError, first_line
from ..core.graph import GraphIndex
from ..core.io import load_model
from ..core.runtime import random_feeds
from ..core.shapes import infer_value_shapes, input_shapes, parse_shape_specs
from ..core.cost import count_macs, count_params
from ..prune.resized import kept_inputs, kept_outputs, state_plan, stream, with_zero_state
from . import memory
from .latency import TimingPlan, summarize, time_interleaved
from .metrics import fidelity
from .providers import OPT_LEVELS, create_session, resolve_provider
from .tasks import TaskConfig, evaluate


@dataclass(frozen=True)
class BenchConfig:
    provider: str = "cpu"
    threads: int = 0                 # intra-op threads (0: onnxruntime's default, all cores)
    inter_threads: int = 0
    opt_level: str = "all"
    warmup: int = 10
    runs: int | None = 100
    duration: float | None = None
    shapes: tuple | dict | None = None
    seed: int = 0
    data: DataConfig | None = None
    task: TaskConfig | None = None
    output: str | None = None        # output used for fidelity and task metrics (default: the first)
    fidelity_inputs: int = 8         # seeded inputs for fidelity without --data
    memory: bool = True
    spin: bool = True                # False: idle intra-op workers sleep instead of busy-waiting
    names: tuple[str, ...] = field(default_factory=tuple)  # display names (default: file names)
    # per model, in order: the prune's resized_io (--allow-io-change) relating it to the first
    # model, or None; fidelity then feeds it the kept state slice (prune.resized)
    resized: tuple = field(default_factory=tuple)

    def check(self) -> None:
        if self.opt_level not in OPT_LEVELS:
            raise UsageError(f"--opt-level {self.opt_level}: use one of {', '.join(OPT_LEVELS)}")
        if self.warmup < 0 or (self.runs is not None and self.runs < 1):
            raise UsageError("--warmup must be >= 0 and --runs >= 1")
        if self.duration is not None and self.duration <= 0:
            raise UsageError(f"--duration {self.duration} must be positive")
        if self.threads < 0 or self.inter_threads < 0:
            raise UsageError("--threads and --inter-threads must be >= 0")
        if self.task is not None:
            if self.data is None:
                raise UsageError(f"--task {self.task.task} needs --data (labelled examples)")
            self.task.check()


def machine_info(provider: str, cfg: BenchConfig) -> dict:
    import onnxruntime as ort

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from ..core.machine import isa_flags

    return {"cpu": cpu, "isa": isa_flags(), "cores": os.cpu_count(), "system": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(), "onnxruntime": ort.__version__, "provider": provider,
            "threads": cfg.threads or "default", "inter_threads": cfg.inter_threads or "default",
            "opt_level": cfg.opt_level, "spinning": cfg.spin}


class _Model:
    """One model under test: its file, proto, session and inputs."""

    def __init__(self, path: str, name: str, cfg: BenchConfig, provider: str, overrides: dict):
        self.path, self.name = str(path), name
        self.proto = load_model(path)
        self.shapes = input_shapes(GraphIndex.build(self.proto), overrides)
        t0 = time.perf_counter()
        try:
            self.session = create_session(self.path, provider, threads=cfg.threads, inter_threads=cfg.inter_threads,
                                          opt_level=cfg.opt_level, model_name=name, spin=cfg.spin)
        except UsageError:
            raise
        except Exception as exc:
            raise ModelError(f"{path}: onnxruntime cannot create a session ({first_line(exc)})") from None
        self.session_ms = (time.perf_counter() - t0) * 1e3
        outputs = [o.name for o in self.session.get_outputs()]
        if cfg.output is not None and cfg.output not in outputs:
            raise UsageError(f"--output {cfg.output}: {name} has outputs {', '.join(outputs)}")
        self.output = cfg.output or outputs[0]

    def static_figures(self) -> dict:
        try:
            macs = count_macs(self.proto, infer_value_shapes(self.proto, self.shapes))
        except Exception:
            macs = None
        return {"size_bytes": os.path.getsize(self.path), "params": count_params(self.proto), "macs": macs}

    def outputs(self, feed_list: list[dict], carry: list | None = None) -> list[np.ndarray]:
        """The compared output on each feed; with `carry` ((input, output) state pairs) the feeds
        are one stream, each call fed this model's own previous state."""
        return [outs[0] for outs in stream(self.session, [self.output], feed_list, carry or [])]


def _examples(path: str, cfg: BenchConfig, overrides: dict) -> list:
    """The --data examples. --shape fixes their dims only where the model's own are fixed-size
    windows (a raw-waveform window); otherwise each clip keeps its length, as in use."""
    data = DataConfig(**{**cfg.data.__dict__, "shapes": overrides or None})
    examples = list(load_examples(load_model(path), data))
    if not examples:
        raise DataError(f"--data {cfg.data.path}: no examples")
    return examples


def _shapes_from(examples: list, overrides: dict) -> dict:
    """Shapes for MACs where --shape gives none: the first example's."""
    return {**{k: list(v.shape) for k, v in examples[0].feeds.items()}, **overrides}


def run_bench(models: list[str], cfg: BenchConfig, timer=None) -> dict:
    """Benchmark `models` (paths); every ratio is relative to the first. Returns a JSON-able dict.
    `timer.bench(loaded, feed_sets, cfg, provider) -> (seconds per model, memory per model or None,
    machine)` times elsewhere (distributed.DeviceTimer: on the target device, the same interleaved
    rounds); fidelity and task metrics are computed here either way."""
    cfg.check()
    if not models:
        raise UsageError("give at least one model")
    provider = resolve_provider(cfg.provider)
    overrides = cfg.shapes if isinstance(cfg.shapes, dict) else parse_shape_specs(cfg.shapes)
    names = list(cfg.names) or _display_names(models)
    examples = _examples(models[0], cfg, {}) if cfg.data is not None else None
    if examples is not None:
        overrides = _shapes_from(examples, overrides)
    resized = (list(cfg.resized) + [None] * len(models))[:len(models)]
    loaded = [_Model(p, n, cfg, provider, _kept_dims(overrides, rs)) for p, n, rs in zip(models, names, resized)]
    if examples is not None:
        base = [ex.feeds for ex in examples]
    else:
        base = [random_feeds(loaded[0].session, loaded[0].shapes, cfg.seed + i)
                for i in range(max(1, cfg.fidelity_inputs))]
    base = with_zero_state(base, [r for rs in resized for r in rs or []])
    feed_sets, unpaired = [], {}
    for m, rs in zip(loaded, resized):
        if rs:
            feed_sets.append([kept_inputs(f, state_plan(rs)[0]) for f in base])
        elif examples is not None or m.shapes == loaded[0].shapes:
            feed_sets.append(base)
        else:  # other input shapes and no prune report saying which units were kept
            feed_sets.append([random_feeds(m.session, m.shapes, cfg.seed + i) for i in range(len(base))])
            unpaired[m.name] = differing_inputs(loaded[0].shapes, m.shapes)
    _check_feeds(loaded, feed_sets)
    machine, memories = machine_info(provider, cfg), None
    if timer is None:
        run_fns = [_runner(m.session, feeds) for m, feeds in zip(loaded, feed_sets)]
        times = time_interleaved(run_fns, TimingPlan(cfg.warmup, None if cfg.duration else cfg.runs, cfg.duration))
    else:
        times, memories, device = timer.bench(loaded, feed_sets, cfg, provider)
        machine = {**machine, **device, "timed_on": timer.name}
    results = []
    for i, (m, t) in enumerate(zip(loaded, times)):
        entry = {"name": m.name, "path": m.path, **m.static_figures(), "session_ms": m.session_ms,
                 "latency": summarize(t), "inputs": m.shapes, "output": m.output}
        if memories is not None:
            entry["memory"] = memories[i]
        elif cfg.memory:
            entry["memory"] = memory.measure(m.path, provider=provider, shapes=m.shapes, threads=cfg.threads,
                                             inter_threads=cfg.inter_threads, opt_level=cfg.opt_level, seed=cfg.seed,
                                             spin=cfg.spin)
        results.append(entry)
    _add_ratios(results)
    plans = [state_plan(rs) for rs in resized]
    carry = list(dict.fromkeys(p for _, pairs in plans for p in pairs))  # state callers feed back, if any
    outputs = [m.outputs(feeds, carry) for m, feeds in zip(loaded, feed_sets)]
    for entry, m, outs, (io, _) in zip(results[1:], loaded[1:], outputs[1:], plans[1:]):
        if m.name in unpaired:
            entry["fidelity"] = {"error": f"not measured: inputs differ from {loaded[0].name}'s ({unpaired[m.name]}), "
                                          f"kept units unknown; give its prune --report"}
            continue
        baseline = [kept_outputs([m.output], [y], io)[0] for y in outputs[0]]
        try:
            entry["fidelity"] = fidelity(baseline, outs)
        except ValueError as exc:
            entry["fidelity"] = {"error": str(exc)}
        if m.output in io:
            entry["fidelity"]["kept_units"] = [int(io[m.output][1].sum()), int(io[m.output][1].size)]
    if cfg.task is not None:
        for entry, outs in zip(results, outputs):
            entry["task"] = evaluate(cfg.task, examples, outs)
    return {"machine": machine,
            "timing": {"warmup": cfg.warmup, "runs": cfg.runs if not cfg.duration else None, "duration_s": cfg.duration,
                       "interleaved": "round-robin, one run per model per round, order rotated each round",
                       "inputs": f"--data {cfg.data.path} ({len(examples)} examples, cycled)" if examples
                       else f"seeded random (seed {cfg.seed}, {len(feed_sets[0])} input sets, cycled)"},
            "task": cfg.task.task if cfg.task else None, "models": results,
            **({"state": state_note(resized, carry, len(base))} if any(resized) else {})}


def state_note(resized: list, carry: list, steps: int) -> dict:
    """How resized state was fed for fidelity (as prune's report says it)."""
    return {"zero_initial": sorted({r["name"] for rs in resized for r in rs or [] if r["kind"] == "input"}),
            "carried": [list(p) for p in carry], "steps": steps if carry else 1}


def _kept_dims(overrides: dict, resized: list | None) -> dict:
    """--shape (or the data's shapes) for a model whose state a prune resized: those at its size."""
    out = {k: list(v) for k, v in overrides.items()}
    for r in resized or []:
        if r["kind"] == "input" and r["name"] in out:
            out[r["name"]][r["axis"]] = r["new"]
    return out


def differing_inputs(first: dict, other: dict) -> str:
    """'name [a] vs [b]' for each input whose shape differs between two models."""
    return ", ".join(f"{k} {list(first.get(k) or [])} vs {list(other.get(k) or [])}"
                     for k in sorted(set(first) | set(other)) if list(first.get(k) or []) != list(other.get(k) or []))


def _display_names(paths: list[str]) -> list[str]:
    names = [Path(p).name for p in paths]
    return names if len(set(names)) == len(names) else [str(p) for p in paths]


def _runner(session, feeds: list[dict]):
    def run(i: int) -> None:
        session.run(None, feeds[i % len(feeds)])
    return run


def _check_feeds(loaded: list[_Model], feed_sets: list[list[dict]]) -> None:
    for m, feeds in zip(loaded, feed_sets):
        want = {i.name for i in m.session.get_inputs()}
        have = set(feeds[0])
        if want != have:
            raise DataError(f"{m.name}: inputs {', '.join(sorted(want))} but the data gives {', '.join(sorted(have))}")


def _add_ratios(results: list[dict]) -> None:
    """Each model relative to the first: speedup = p50_first / p50_this, sizes as this / first."""
    first = results[0]
    for r in results:
        r["speedup"] = first["latency"]["p50_ms"] / r["latency"]["p50_ms"]
        for key in ("params", "macs", "size_bytes"):
            r[f"{key}_ratio"] = r[key] / first[key] if r.get(key) and first.get(key) else None
