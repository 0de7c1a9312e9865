"""Progress as tasks finish: a bar redrawn on a terminal, one line per item otherwise (logs, CI)."""

from __future__ import annotations

import sys
import time


class Progress:
    """`start(n)`, then `item(label, outcome)` per finished task, then `finish()`."""

    def __init__(self, title: str = "", *, stream=None, tty: bool | None = None):
        self.title, self.stream = title, stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.total = self.done = self.failed = 0
        self.start_time = 0.0

    def start(self, total: int, title: str = "") -> None:
        self.total, self.done, self.failed, self.start_time = total, 0, 0, time.perf_counter()
        self.title = title or self.title or "tasks"

    def item(self, label: str, outcome) -> None:
        self.done += 1
        self.failed += not outcome.ok
        host = f"{outcome.where['hostname']}:{outcome.where['pid']}" if outcome.where else "?"
        state = "ok" if outcome.ok else f"FAILED ({outcome.error})"
        if self.tty:
            width = 30
            filled = int(width * self.done / max(1, self.total))
            self.stream.write(f"\r{self.title} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}"
                              f" {label[:40]:<40}")
            if not outcome.ok:
                self.stream.write(f"\n{self.title}: {label}: {state}\n")
        else:
            self.stream.write(f"{self.title} [{self.done}/{self.total}] {label}: {state}, "
                              f"{outcome.seconds:.2f}s on {host}\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty and self.total:
            self.stream.write("\n")
        self.stream.write(f"{self.title}: {self.done} task(s) in {time.perf_counter() - self.start_time:.1f}s"
                          + (f", {self.failed} failed" if self.failed else "") + "\n")
        self.stream.flush()
