"""onnxprune: structured pruning of exported ONNX speech models, verified against a reference."""

from .analysis import Analysis, Group
from .api import PruneConfig, PruneResult, analyze, prune
from .errors import ModelError, OnnxpruneError, UsageError, VerificationError
from .core.io import load_model, save_model
from .prune.plan import Plan

__version__ = "0.1.0"

__all__ = ["Analysis", "Group", "ModelError", "OnnxpruneError", "Plan", "PruneConfig", "PruneResult",
           "UsageError", "VerificationError", "analyze", "load_model", "prune", "save_model"]

from .search.auto import auto_prune  # noqa: E402  (automatic budgeted pruning)

__all__ += ["auto_prune"]
