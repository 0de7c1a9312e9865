"""`--ray [ADDRESS]`, `--on RESOURCE`, `--latency-on RESOURCE`: the optional Ray backend's options.

Ray is imported only when one of them is given (`pip install 'onnxprune[ray]'`)."""

from __future__ import annotations

import click


def _check(ctx, param, value):
    from ..distributed.cluster import check_address
    from ..errors import UsageError

    if value is None:
        return None
    try:
        return check_address(value)
    except UsageError as exc:  # before click complains about the model it took as the address
        raise click.BadParameter(str(exc)) from None


def ray_option(f):
    return click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
                        callback=_check, help="Run on Ray: a local instance, or join the cluster at HOST:PORT "
                        "(pip install 'onnxprune[ray]'; see docs/ray.md).")(f)


def on_option(f):
    return click.option("--on", metavar="RESOURCE", help="Time on the Ray worker holding this custom resource, e.g. "
                        "device:pi5 (implies --ray; fidelity and task metrics are computed here).")(f)


def executor_for(address: str | None, *, needed: bool = False):
    """A RayExecutor streaming progress to stderr, or None without --ray (and not `needed`)."""
    if address is None and not needed:
        return None
    from ..distributed import RayExecutor, connect
    from .progress import Progress

    cluster = connect(address)
    where = "a local Ray" if cluster.started_here else f"the Ray cluster at {cluster.address}"
    click.echo(f"ray: {where}, {cluster.cpus()} CPU(s)"
               + "".join(f", {k} x{v:g}" for k, v in sorted(cluster.resources.items()) if k.startswith("device:")),
               err=True)
    return RayExecutor(cluster, progress=Progress())


def device_timer(executor, resource: str | None, provider: str = "CPUExecutionProvider"):
    from ..bench.providers import SHORT_NAMES
    from ..distributed import DeviceTimer

    timer = DeviceTimer(executor, resource, SHORT_NAMES.get(provider.lower(), provider))
    i = timer.info
    click.echo(f"timing on {timer.name}: {i['hostname']} pid {i['pid']}, {i['cpu']} ({i['cores']} cores), "
               f"onnxruntime {i['onnxruntime']}, {i['provider']}", err=True)
    return timer
