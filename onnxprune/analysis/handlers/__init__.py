"""Per-op knowledge. Importing this package registers every handler module."""

from . import (  # noqa: F401  (imported for registration)
    attention,
    contrib,
    control_flow,
    conv,
    elementwise,
    gemm,
    normalization,
    pooling,
    quantized,
    recurrent,
    reshape,
    reduce,
    shape_ops,
    shape_reader,
)
from .registry import handler_for, register, supported_ops

__all__ = ["handler_for", "register", "supported_ops"]
