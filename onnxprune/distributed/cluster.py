"""Connecting to Ray: a fresh local instance, or an existing cluster by address.

Why a probe before `ray.init`: joining an address where nothing listens makes Ray retry for
minutes with a page of warnings; a plain TCP connect answers in a second, so a wrong address is
one line. `LocalCluster` starts a real head and worker processes (`ray start --block`) for tests
and benchmarks, and ends exactly the process groups it started.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

from ..errors import UsageError

LOCAL = "local"  # `--ray` without an address


def import_ray():
    """The ray module, or a one-line UsageError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs Ray, which is not installed: pip install 'onnxprune[ray]'") from None
    return ray


def check_address(address: str | None) -> str:
    """'local' (start one here) or host:port of a running head; anything else is a usage error."""
    if address in (None, "", LOCAL):
        return LOCAL
    if address.endswith(".onnx") or os.path.sep in address:
        raise UsageError(f"--ray '{address}' looks like a file: put --ray after the model, or write --ray=ADDRESS")
    host, _, port = address.rpartition(":")
    if address.startswith("ray://") or not host or not port.isdigit():
        raise UsageError(f"--ray '{address}': expected HOST:PORT of a Ray head (ray start --head prints it)")
    return address


def probe(address: str, timeout: float = 3.0) -> None:
    """Raise a one-line UsageError unless something accepts TCP connections at host:port."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(f"cannot reach a Ray cluster at {address} ({reason}); start one with "
                         f"'ray start --head' or check the address") from None


@dataclass
class Cluster:
    """A connection: where it is, what it offers (CPUs, custom resources such as device:pi5)."""

    address: str
    resources: dict = field(default_factory=dict)
    started_here: bool = False

    def has(self, resource: str) -> bool:
        return self.resources.get(resource, 0) > 0

    def require(self, resource: str) -> None:
        if not self.has(resource):
            offered = sorted(k for k in self.resources if ":" in k and not k.startswith("node:"))
            raise UsageError(f"no Ray worker advertises '{resource}' (offered: {', '.join(offered) or 'none'}); on the "
                             f"device run: ray start --address HEAD:PORT --resources '{{\"{resource}\": 1}}'")

    def cpus(self) -> int:
        return int(self.resources.get("CPU", 0))


_connected: Cluster | None = None


def connect(address: str | None = None, *, num_cpus: int | None = None) -> Cluster:
    """Join the cluster at `address` (host:port), or start a private local Ray when None/'local'.
    Connecting twice in one process returns the first connection."""
    global _connected
    if _connected is not None:
        return _connected
    address = check_address(address)
    ray = import_ray()
    if address != LOCAL:
        probe(address)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    kwargs = dict(logging_level="ERROR", log_to_driver=False, include_dashboard=False,
                  configure_logging=True)
    try:
        if address == LOCAL:
            ray.init(address="local", num_cpus=num_cpus, **kwargs)
        else:
            ray.init(address=address, **kwargs)
    except Exception as exc:  # a listener that is not a Ray head, version mismatch, ...
        raise UsageError(f"cannot join the Ray cluster at {address}: {str(exc).splitlines()[0][:200]}") from None
    _connected = Cluster(address, dict(ray.cluster_resources()), address == LOCAL)
    return _connected


def disconnect() -> None:
    global _connected
    if _connected is not None:
        import ray

        ray.shutdown()
        _connected = None


AUTH_MODE = "disabled"  # LocalCluster: a private test cluster on 127.0.0.1, no token to share


class LocalCluster:
    """A real Ray cluster on this machine: a head and worker nodes, each its own `ray start --block`
    process group (so a worker can be killed alone). For tests and benchmarks; a driver joining it
    needs RAY_AUTH_MODE=disabled too (Ray >= 2.5x enables token auth once ~/.ray/auth_token exists).

        with LocalCluster(head_cpus=1, workers=[{"num_cpus": 1, "resources": {"device:test": 1}}]) as c:
            connect(c.address)
    """

    def __init__(self, *, head_cpus: int = 1, workers=(), object_store_mb: int = 100, timeout: float = 90.0):
        self.head_cpus, self.workers, self.timeout = head_cpus, list(workers), timeout
        self.object_store = str(object_store_mb * 1024 * 1024)
        self.procs: list[subprocess.Popen] = []
        self.address = ""
        self.temp = ""

    def _start(self, args: list[str]) -> subprocess.Popen:
        """One `ray start --block` in its own process group; ready once it says 'Ray runtime started'."""
        ray_cli = shutil.which("ray", path=os.path.dirname(sys.executable)) or "ray"
        env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE=AUTH_MODE)
        log = open(os.path.join(self.temp, f"start{len(self.procs)}.log"), "w+")
        proc = subprocess.Popen([ray_cli, "start", "--block", "--disable-usage-stats",
                                 "--object-store-memory", self.object_store, *args],
                                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.procs.append(proc)

        def ready():
            if proc.poll() is not None:
                raise RuntimeError(f"ray start exited with {proc.returncode}: {_tail(log.name)}")
            return "Ray runtime started" in _tail(log.name, 100000)

        self._wait(ready, "ray start " + " ".join(args[:1]))
        return proc

    def __enter__(self) -> "LocalCluster":
        self.temp = tempfile.mkdtemp(prefix="opr-", dir="/tmp")  # short: Ray's socket paths are limited
        port = _free_port()
        self.address = f"127.0.0.1:{port}"
        self.head = self._start(["--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus",
                                 str(self.head_cpus), "--include-dashboard", "false", "--temp-dir", self.temp])
        self.nodes = [self.add_worker(**w) for w in self.workers]
        return self

    def add_worker(self, num_cpus: int = 1, resources: dict | None = None) -> subprocess.Popen:
        return self._start(["--address", self.address, "--node-ip-address", "127.0.0.1", "--num-cpus", str(num_cpus),
                            "--resources", json.dumps(resources or {})])

    def kill_worker(self, proc: subprocess.Popen) -> None:
        _kill_group(proc)

    def _wait(self, ready, what: str) -> None:
        deadline = time.monotonic() + self.timeout
        try:
            while time.monotonic() < deadline:
                if ready():
                    return
                time.sleep(0.2)
            raise RuntimeError(f"{what} did not start within {self.timeout:g}s")
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *exc) -> None:
        for proc in reversed(self.procs):
            _kill_group(proc)
        self.procs.clear()
        if self.temp:
            shutil.rmtree(self.temp, ignore_errors=True)


def _kill_group(proc: subprocess.Popen) -> None:
    """End the process group this object started (`ray start`, its raylet and agents; Ray's worker
    processes, in groups of their own, exit when their raylet does)."""
    import signal

    for sig, wait in ((signal.SIGTERM, 3), (signal.SIGKILL, 5)):
        if proc.poll() is not None and sig == signal.SIGTERM:
            continue
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=wait)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            pass


def _tail(path: str, n: int = 300) -> str:
    with open(path, errors="replace") as fh:
        return fh.read()[-n:]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
