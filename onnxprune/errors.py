"""One exception family. The CLI maps each class to an exit code and prints one line."""


class OnnxpruneError(Exception):
    """Base class: something the user can act on (bad model, bad option, failed check)."""

    exit_code = 1


class ModelError(OnnxpruneError):
    """The model file is unreadable, invalid, or uses something we cannot handle."""


class UsageError(OnnxpruneError):
    """An option or argument is wrong (bad ratio, bad --shape, output path equals input)."""

    exit_code = 2


class VerificationError(OnnxpruneError):
    """The pruned model does not match its reference, fails the checker, or fails to load."""


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type name if the message is empty), for
    one-line errors that quote what onnxruntime or onnx said."""
    lines = str(exc).strip().splitlines()
    return lines[0][:limit] if lines else type(exc).__name__


class FidelityError(OnnxpruneError):
    """The result is further from the original than --min-snr / --max-drop allow (nothing written)."""
