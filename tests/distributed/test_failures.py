"""A worker killed mid-sweep is retried (same files as the local run); with no retries left the
lost ratio is reported and the others kept; an unreachable address is one line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from onnxprune.api import PruneConfig
from onnxprune.bench.evaluate import BenchConfig
from onnxprune.bench.sweep import run_sweep
from onnxprune.distributed import RayExecutor

from ray_helpers import FIXTURE, Recorder

BENCH = BenchConfig(threads=1, runs=3, warmup=1, memory=False, fidelity_inputs=2)
RATIOS = [0.25, 0.5, 0.75]


class Killer(threading.Thread):
    """SIGKILLs the first Ray worker process seen executing one of our tasks (title ray::_call)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.killed, self.stop = None, False

    def run(self):
        deadline = time.monotonic() + 120
        while not self.stop and self.killed is None and time.monotonic() < deadline:
            ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
            busy = [int(line.split()[0]) for line in ps.splitlines() if line.split()[1:2] == ["ray::_call"]]
            if busy:
                os.kill(busy[0], signal.SIGKILL)
                self.killed = busy[0]
            time.sleep(0.02)


def _sweep_with_kill(tmp_path, name, executor):
    """A sweep during which one running task's worker is killed. On a loaded machine the three
    short tasks can all finish between two looks at the process table: then sweep again."""
    for attempt in range(4):
        killer = Killer()
        killer.start()
        try:
            result = run_sweep(FIXTURE, RATIOS, PruneConfig(), BENCH, str(tmp_path / f"{name}{attempt}"),
                               executor=executor)
        finally:
            killer.stop = True
            killer.join()
        if killer.killed is not None:
            return result, killer.killed
    pytest.fail("no task was caught running in 4 sweeps")


def test_killed_worker_is_retried(ray_cluster, tmp_path):
    """The same kill with no retries loses the item (next test): with retries nothing is lost and
    the files are the local run's. (Other ratios may have finished on the killed worker earlier,
    so where each item ran says nothing about the retry.)"""
    local = run_sweep(FIXTURE, RATIOS, PruneConfig(), BENCH, str(tmp_path / "local"))
    executor = RayExecutor(ray_cluster.connection, retries=2, progress=Recorder())
    ray, _ = _sweep_with_kill(tmp_path, "ray", executor)
    assert ray["failed"] == []
    assert [Path(p["path"]).read_bytes() for p in ray["points"]] == [Path(p["path"]).read_bytes() for p in local["points"]]


def test_lost_item_is_reported_and_the_others_kept(ray_cluster, tmp_path):
    executor = RayExecutor(ray_cluster.connection, retries=0, progress=Recorder())
    result, _ = _sweep_with_kill(tmp_path, "ray", executor)
    assert len(result["failed"]) == 1 and "worker lost" in result["failed"][0]["message"]
    assert len(result["points"]) == len(RATIOS)  # the original and the two ratios that finished
    assert all(Path(p["path"]).exists() for p in result["points"])


def test_unreachable_address_is_one_line(tmp_path):
    pytest.importorskip("ray")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once closed
    out = tmp_path / "sweep"
    run = subprocess.run([sys.executable, "-m", "onnxprune", "sweep", FIXTURE, "--ray", f"127.0.0.1:{port}",
                          "--out", str(out)], capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: cannot reach a Ray cluster at 127.0.0.1:{port} (Connection refused); start one with "
                      "'ray start --head' or check the address"]
    assert "Traceback" not in run.stderr and not out.exists()


def test_ray_given_a_model_path_says_how_to_write_it(tmp_path):
    run = subprocess.run([sys.executable, "-m", "onnxprune", "sweep", "--ray", FIXTURE, "--out", str(tmp_path / "s")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode != 0 and "put --ray after the model, or write --ray=ADDRESS" in run.stderr


def test_core_import_does_not_import_ray():
    code = "import sys, onnxprune, onnxprune.api, onnxprune.cli, onnxprune.distributed; print('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
