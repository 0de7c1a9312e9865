"""Benchmarking: sessions on execution providers, interleaved latency, memory, task metrics,
fidelity to a baseline model, reports and plots. `onnxprune bench` and `onnxprune sweep` are
thin CLI layers over `run_bench` and `run_sweep`."""

from .evaluate import BenchConfig, run_bench
from .providers import resolve_provider

__all__ = ["BenchConfig", "resolve_provider", "run_bench"]
