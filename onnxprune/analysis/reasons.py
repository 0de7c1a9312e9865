"""Why channels are blocked, as data: a code (stable, for hints and tests), the node, a message.

A Reason reads as its message wherever text is expected (reports, `inspect`, JSON `blocked_by`),
so every consumer of the old free-text reasons keeps working; code-aware callers (the CLI's hints,
`inspect --json`'s `blocked`) read `.code` and `.node`. Library messages never name CLI flags:
the CLI maps codes to flags (`cli/hints.py`).
"""

from __future__ import annotations

CODES = {
    "interface": "reaches a graph output (the model's interface)",
    "fixed-output": "reaches a graph output that is not recurrent state (never resized)",
    "state-input": "recurrent state read from a graph input (the caller's state buffer)",
    "not-state": "reaches a graph output that is not recurrent state fed back through an input",
    "no-handler": "an op onnxprune has no handler for",
    "handler-error": "a handler could not analyse the node",
    "runtime-value": "a weight or parameter computed at run time",
    "subgraph": "read inside a Loop/Scan body, which is not analysed",
    "unverifiable-branch": "inside an If branch no seeded input can run",
    "excluded": "excluded by the user",
    "mixes-channels": "an op that mixes the channel axis",
    "blocked": "an op that cannot remove these channels exactly",
}


class Reason(str):
    """A block reason: the message as a string, with `code` and `node` beside it."""

    code: str
    node: str

    def __new__(cls, message: str, code: str = "blocked", node: str = ""):
        if code not in CODES:
            raise ValueError(f"unknown reason code {code!r}")
        obj = super().__new__(cls, message)
        obj.code, obj.node = code, node
        return obj

    def to_dict(self) -> dict:
        return {"node": self.node, "code": self.code, "message": str(self)}


def as_reason(reason: str, node: str = "") -> Reason:
    """A handler's free-text reason keeps its code if it has one ('blocked' otherwise)."""
    return reason if isinstance(reason, Reason) else Reason(reason, "blocked", node)
