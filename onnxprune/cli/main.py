"""The `onnxprune` command group: one module per command, registered here."""

from __future__ import annotations

import click

from .. import __version__
from .auto import auto
from .batch import batch
from .bench import bench
from .demo import demo
from .inspect import inspect
from .prune import prune_cmd
from .quantize import quantize
from .sweep import sweep


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="onnxprune")
def main():
    """Structured pruning of ONNX speech models, verified against a reference."""



for _command in (inspect, prune_cmd, demo, bench, sweep, quantize, auto, batch):
    main.add_command(_command)
