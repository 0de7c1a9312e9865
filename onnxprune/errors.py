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
