"""Shared by the Ray tests: the fixture model, a progress sink that keeps outcomes, process lookup."""

from __future__ import annotations

import os
from pathlib import Path

FIXTURE = str(Path(__file__).resolve().parents[2] / "onnxprune" / "assets" / "kws_dscnn.onnx")


class Recorder:
    """A progress sink that keeps every outcome (where each task ran)."""

    def __init__(self):
        self.outcomes = []

    def start(self, total, title=""):
        pass

    def item(self, label, outcome):
        self.outcomes.append(outcome)

    def finish(self):
        pass


def parent_group(pid: int) -> int:
    """Process group of `pid`'s parent (a Ray worker's parent is its node's raylet)."""
    ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    return os.getpgid(ppid)
