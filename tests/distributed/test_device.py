"""Timings on the worker that holds a custom resource: the report names that worker (hostname,
pid; its parent is the raylet of the node started with --resources '{"device:test": 1}')."""

from __future__ import annotations

import json
import socket

from click.testing import CliRunner

from onnxprune.bench.evaluate import BenchConfig, run_bench
from onnxprune.cli import main
from onnxprune.distributed import DeviceTimer
from onnxprune.search.auto import AutoConfig, auto_prune

from ray_helpers import FIXTURE, parent_group


def _on_device_node(info: dict, cluster) -> bool:
    return info["hostname"] == socket.gethostname() and parent_group(info["pid"]) == cluster.nodes[0].pid


def test_bench_on_device_times_there_and_scores_here(ray_cluster, executor, tmp_path):
    timer = DeviceTimer(executor, "device:test")
    result = run_bench([FIXTURE, FIXTURE], BenchConfig(threads=1, runs=12, warmup=2, memory=False, names=("a", "b")),
                       timer=timer)
    machine = result["machine"]
    assert machine["timed_on"] == "device:test"
    assert _on_device_node(machine, ray_cluster)
    assert parent_group(machine["pid"]) != ray_cluster.head.pid
    assert [m["latency"]["runs"] for m in result["models"]] == [12, 12]
    assert result["models"][1]["fidelity"]["top1_agreement"] == 1.0  # scored here, from the same model


def test_bench_cli_on_device_names_it(ray_cluster, tmp_path):
    out = tmp_path / "b.json"
    run = CliRunner().invoke(main, ["bench", FIXTURE, "--runs", "8", "--warmup", "1", "--no-memory", "--threads", "1",
                                    "--ray", ray_cluster.address, "--on", "device:test", "--json", str(out)])
    assert run.exit_code == 0, run.output
    machine = json.loads(out.read_text())["machine"]
    assert _on_device_node(machine, ray_cluster) and machine["onnxruntime"] and machine["provider"]


def test_bench_on_a_resource_nobody_offers_is_one_line(ray_cluster):
    run = CliRunner().invoke(main, ["bench", FIXTURE, "--ray", ray_cluster.address, "--on", "device:pi5"])
    assert run.exit_code != 0
    assert "no Ray worker advertises 'device:pi5' (offered: device:test)" in run.stderr
    assert "Traceback" not in run.stderr


def test_auto_latency_on_device(ray_cluster, executor, tmp_path, monkeypatch):
    monkeypatch.setenv("ONNXPRUNE_CACHE", str(tmp_path))
    timer = DeviceTimer(executor, "device:test")
    search = AutoConfig(goal="speedup", target=1.2, max_drop=None, min_snr=None, runs=8, cache=True, max_evals=10)
    done = auto_prune(FIXTURE, search, timer=timer, executor=executor)
    latency = done.report()["latency_model"]
    assert _on_device_node(latency["device"], ray_cluster)
    assert latency["forward_passes"] > 0 and timer.calls >= len(latency["groups"]) + 1  # every timing went there
    cached = list((tmp_path / "latency").glob("*.json"))
    assert len(cached) == 1 and json.loads(cached[0].read_text())["device"]["hostname"] == socket.gethostname()


def test_sweep_benches_on_device_and_bench_ray_alone_on_a_worker(ray_cluster, tmp_path):
    run = CliRunner().invoke(main, ["sweep", FIXTURE, "--ratios", "0,0.5", "--runs", "4", "--warmup", "1", "--no-memory",
                                    "--threads", "1", "--out", str(tmp_path / "s"), "--ray", ray_cluster.address,
                                    "--on", "device:test"])
    assert run.exit_code == 0, run.output
    machine = json.loads((tmp_path / "s" / "sweep.json").read_text())["bench"]["machine"]
    assert _on_device_node(machine, ray_cluster) and machine["provider"] == "CPUExecutionProvider"
    out = tmp_path / "b.json"
    run = CliRunner().invoke(main, ["bench", FIXTURE, "--runs", "4", "--warmup", "1", "--no-memory", "--ray",
                                    ray_cluster.address, "--json", str(out)])
    assert run.exit_code == 0, run.output
    assert json.loads(out.read_text())["machine"]["timed_on"] == "a Ray worker"
