"""A real Ray cluster for these tests: a head (1 CPU) and one worker node (1 CPU) that advertises
the custom resource `device:test`, each a `ray start --block` process group started here and
ended here. Skipped cleanly when Ray is not installed (pip install -e '.[test,ray]')."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def ray_cluster():
    pytest.importorskip("ray")
    from onnxprune.distributed import LocalCluster, connect, disconnect

    previous = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"  # as the cluster's own processes (LocalCluster)
    with LocalCluster(head_cpus=1, workers=[{"num_cpus": 1, "resources": {"device:test": 1}}]) as cluster:
        cluster.connection = connect(cluster.address)
        try:
            yield cluster
        finally:
            disconnect()
    if previous is None:
        os.environ.pop("RAY_AUTH_MODE", None)
    else:
        os.environ["RAY_AUTH_MODE"] = previous


@pytest.fixture
def executor(ray_cluster):
    from onnxprune.distributed import RayExecutor
    from ray_helpers import Recorder

    return RayExecutor(ray_cluster.connection, progress=Recorder())
