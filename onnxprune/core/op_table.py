"""A table keyed by (domain, op type), filled once per key: the shape shared by the analysis
handlers and the MAC counters, so both resolve `ai.onnx` the same way and both refuse a second
registration instead of silently replacing the first."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


def op_key(domain: str, op_type: str) -> tuple[str, str]:
    """`ai.onnx` and the empty domain are the same domain."""
    return ("" if domain == "ai.onnx" else domain, op_type)


class OpTable(Generic[T]):
    def __init__(self, what: str):
        self.what = what  # for the error: "handler", "MAC counter"
        self._entries: dict[tuple[str, str], T] = {}

    def add(self, value: T, *op_types: str, domain: str = "") -> None:
        for op in op_types:
            key = op_key(domain, op)
            if key in self._entries:
                raise RuntimeError(f"{self.what} for {domain or 'ai.onnx'}::{op} registered twice")
            self._entries[key] = value

    def get(self, node) -> T | None:
        return self._entries.get(op_key(node.domain, node.op_type))

    def items(self) -> Iterator[tuple[tuple[str, str], T]]:
        return iter(self._entries.items())

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._entries)
