"""What the user can do about a block reason, by its code: the CLI's flags live here, not in the library."""

from __future__ import annotations

HINTS = {
    "state-input": "--allow-io-change resizes the state input and output together",
    "interface": "--allow-io-change resizes this recurrent state output with its input",
    "runtime-value": "a weight built at run time: fold it (onnxsim) or export with constant weights",
    "unverifiable-branch": "give --input/--shape values that select that branch",
}


def hint(reason) -> str:
    """The hint for a Reason (empty for codes with nothing to do, and for plain text)."""
    return HINTS.get(getattr(reason, "code", ""), "")


def with_hint(reason) -> str:
    h = hint(reason)
    return f"{reason} [{h}]" if h else str(reason)
