"""Per-group latency on the target execution provider, measured rather than assumed.

For each prunable group, the model with that group alone at a few candidate widths (rounded to
`round_to`, so alignment effects are in the numbers) is timed interleaved with the original
(original, w1, w2, w3, original, ... — drift hits all alike) and the median saving per width is
kept. A width between measured ones is interpolated; a plan's latency is predicted as the
original's minus the savings of its groups (additive: a first-order model, which is why `auto`
measures the real candidate before claiming a speedup). Savings come from the median of paired
per-round ratios (original and candidate timed back to back), which is what survives a shared,
loaded machine best. Results are cached per model structure,
provider, threads, shapes and round_to under ~/.cache/onnxprune/latency (or $ONNXPRUNE_CACHE).
Cost: groups × (widths + 1) × (warmup + runs) forward passes; `passes` counts them.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import time
from pathlib import Path

import onnx

from ..core import external
from ..errors import UsageError
from ..core.runtime import make_session, random_feeds
from ..prune.resized import kept_inputs, kept_shapes, state_plan, tagged
from .sensitivity import RATIOS
from .widths import WidthSpace


def check_provider(provider: str) -> None:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if provider not in available:
        raise UsageError(f"execution provider '{provider}' is not available here (available: {', '.join(available)})")


def time_rounds(models: dict[str, onnx.ModelProto], feeds: dict, *, provider: str = "CPUExecutionProvider",
                threads: int = 1, runs: int = 100, warmup: int = 10) -> dict[str, list[float]]:
    """Milliseconds of every timed run, models interleaved round-robin (round i of each model
    ran at nearly the same moment, under the same load). A candidate whose state `auto
    --allow-io-change` shrank (prune.resized.tag) runs on its kept slice of `feeds`."""
    sessions = {k: make_session(m, providers=(provider,), threads=threads, prepack=True) for k, m in models.items()}
    fed = {k: kept_inputs(feeds, state_plan(tagged(m))[0]) if tagged(m) else feeds for k, m in models.items()}
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for i in range(warmup + runs):
        for k, s in sessions.items():
            t = time.perf_counter()
            s.run(None, fed[k])
            if i >= warmup:
                times[k].append((time.perf_counter() - t) * 1e3)
    return times


def time_interleaved(models: dict[str, onnx.ModelProto], feeds: dict, **options) -> dict[str, float]:
    """Median milliseconds per model, runs interleaved round-robin."""
    return {k: statistics.median(v) for k, v in time_rounds(models, feeds, **options).items()}


def paired_speedup(original: list[float], candidate: list[float]) -> float:
    """Median over rounds of original/candidate time: each pair ran back to back, so load from
    other processes (the usual noise on a shared machine) cancels better than in a ratio of medians."""
    return statistics.median(o / c for o, c in zip(original, candidate))


class LatencyModel:
    """Predicts a plan's latency from per-group measured savings; measures real candidates."""

    def __init__(self, space: WidthSpace, *, provider: str = "CPUExecutionProvider", threads: int = 1,
                 runs: int = 100, warmup: int = 10, seed: int = 0, timer=None):
        """timer: time_rounds' stand-in that runs elsewhere (distributed.DeviceTimer: on the target
        device, which it names in `to_dict` and in the cache key); None times here."""
        if timer is None:
            check_provider(provider)
        self.timer = timer
        self.space, self.provider, self.threads, self.runs, self.warmup = space, provider, threads, runs, warmup
        self.feeds = random_feeds(make_session(space.model), space.analysis.input_shapes, seed)
        self.base_ms = 0.0
        self.table: dict[str, list[dict]] = {}
        self.passes = 0
        self.seconds = 0.0
        self.cached = False

    def _time(self, models: dict) -> dict[str, list[float]]:
        self.passes += len(models) * (self.runs + self.warmup)
        return (self.timer or time_rounds)(models, self.feeds, provider=self.provider, threads=self.threads,
                                           runs=self.runs, warmup=self.warmup)

    def build(self, ratios=RATIOS, *, cache: bool = True, progress=None) -> "LatencyModel":
        path = self._cache_path(ratios)
        if cache and path.exists():
            data = json.loads(path.read_text())
            self.base_ms, self.table, self.cached = data["base_ms"], data["groups"], True
            return self
        start, bases = time.perf_counter(), []
        for name in self.space.groups:
            widths = sorted({self.space.width_at(name, r) for r in ratios} - {self.space.sizes[name]}, reverse=True)
            with external.scratch():
                models = {"original": self.space.model} | {str(w): self.space.build({name: w}) for w in widths}
                rounds = self._time(models)
                del models
            base = statistics.median(rounds["original"])
            bases.append(base)
            self.table[name] = [{"kept": w, "ms": round(statistics.median(rounds[str(w)]), 5),
                                 "speedup": round(paired_speedup(rounds["original"], rounds[str(w)]), 5)} for w in widths]
            if progress:
                progress(name, base, self.table[name])
        self.base_ms = statistics.median(bases) if bases else \
            statistics.median(self._time({"original": self.space.model})["original"])
        self.seconds = time.perf_counter() - start
        if cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(self.to_dict(), indent=1))
        return self

    def saved(self, name: str, kept: int) -> float:
        """Milliseconds saved by this group at this width: from the paired speedup, never negative,
        and never less than at a wider width (a saving measured as negative is noise or a
        misaligned width; neither is a reason to prefer a wider group)."""
        points, best = [(self.space.sizes[name], 0.0)], 0.0
        for e in sorted(self.table.get(name, []), key=lambda e: -e["kept"]):
            best = max(best, self.base_ms * (1 - 1 / e["speedup"]))
            points.append((e["kept"], best))
        for (k0, s0), (k1, s1) in zip(points, points[1:]):
            if k1 <= kept <= k0:
                return s0 if k0 == k1 else s0 + (s1 - s0) * (k0 - kept) / (k0 - k1)
        k1, s1 = points[-1]
        return s1 * (self.space.sizes[name] - kept) / max(1, self.space.sizes[name] - k1)

    def predict(self, keep: dict[str, int]) -> float:
        """Predicted milliseconds of the model at these widths (never below 5 % of the original)."""
        saved = sum(self.saved(n, k) for n, k in keep.items() if k < self.space.sizes[n])
        return max(0.05 * self.base_ms, self.base_ms - saved)

    def measure_speedup(self, model: onnx.ModelProto) -> float:
        """Original time / candidate time, both measured now, interleaved."""
        rounds = self._time({"original": self.space.model, "candidate": model})
        return paired_speedup(rounds["original"], rounds["candidate"])

    def to_dict(self) -> dict:
        return {"provider": self.provider, "threads": self.threads, "runs": self.runs, "base_ms": self.base_ms,
                "forward_passes": self.passes, "seconds": round(self.seconds, 3), "cached": self.cached,
                "groups": self.table} | ({"device": self.timer.info} if self.timer is not None else {})

    def _cache_path(self, ratios) -> Path:
        import onnxruntime as ort

        key = json.dumps(["v2", self.space.fingerprint, self.provider, self.threads, self.runs, self.space.round_to,
                          self.space.analysis.input_shapes, list(ratios), ort.__version__]
                         + ([self.timer.key] if self.timer is not None else []), sort_keys=True)
        root = Path(os.environ.get("ONNXPRUNE_CACHE", Path.home() / ".cache" / "onnxprune"))
        return root / "latency" / (hashlib.sha256(key.encode()).hexdigest()[:20] + ".json")


class MacsLatency:
    """A deterministic stand-in with LatencyModel's interface: time proportional to MACs plus a
    fixed overhead. For tests and for `--latency-model macs` where timing is impossible."""

    def __init__(self, space: WidthSpace, *, overhead: float = 0.1):
        self.space, self.overhead = space, overhead
        self.base_macs = max(1, space.stats(space.full)["macs"])
        self.base_ms = 1.0 + overhead
        self.passes = 0

    def _ms(self, macs: int) -> float:
        return macs / self.base_macs + self.overhead

    def predict(self, keep: dict[str, int]) -> float:
        return self._ms(self.space.stats(keep)["macs"])

    def measure_speedup(self, model: onnx.ModelProto) -> float:
        from ..core.shapes import infer_value_shapes
        from ..core.cost import count_macs

        shapes = kept_shapes(self.space.analysis.input_shapes, model)
        return self.base_ms / self._ms(count_macs(model, infer_value_shapes(model, shapes)))

    def to_dict(self) -> dict:
        return {"provider": "macs proxy (deterministic)", "base_ms": self.base_ms, "forward_passes": 0}
