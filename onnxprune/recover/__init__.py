"""Recovery of a pruned model by distillation from the original (optional extra: torch, onnx2torch).

Importing this package does not import torch; `recover` and `recover_pruned` do, and say what to
install when it is missing.
"""

from __future__ import annotations

from ._deps import INSTALL, available, require
from .distill import RecoverConfig, RecoverResult, recover


def recover_pruned(original, result, feeds, config: RecoverConfig | None = None) -> RecoverResult:
    """Recover a PruneResult's model: outputs distilled from `original`, each pruned layer's
    output first matched to the original's kept channels."""
    from .pairs import kept_channels

    return recover(original, result.model, list(feeds), config, features=kept_channels(result))


__all__ = ["INSTALL", "RecoverConfig", "RecoverResult", "available", "recover", "recover_pruned", "require"]
