"""Op type -> handler. An op with no handler blocks every channel that reaches it."""

from __future__ import annotations

import onnx

from ...core.op_table import OpTable
from .base import Handler

_REGISTRY: OpTable[Handler] = OpTable("handler")


def register(*op_types: str, domain: str = ""):
    """Class decorator: one handler instance serves the listed op types. Registering twice fails."""

    def wrap(cls):
        _REGISTRY.add(cls(), *op_types, domain=domain)
        return cls

    return wrap


def handler_for(node: onnx.NodeProto) -> Handler | None:
    return _REGISTRY.get(node)


def linear_view_for(node: onnx.NodeProto):
    """The node's linear view (handlers' `linear`), or None: not a linear consumer."""
    h = handler_for(node)
    return getattr(h, "linear", None) if h is not None else None


def supported_ops() -> dict[str, list[str]]:
    """Handler module -> op types, for the README table and `inspect --ops`."""
    out: dict[str, list[str]] = {}
    for (domain, op), h in sorted(_REGISTRY.items()):
        mod = type(h).__module__.rsplit(".", 1)[-1]
        out.setdefault(mod, []).append(f"{domain}::{op}" if domain else op)
    return out
