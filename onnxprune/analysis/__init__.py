"""Dependency analysis: which channels of which tensors must be removed together."""

from .groups import Analysis, Group, analyze_model

__all__ = ["Analysis", "Group", "analyze_model"]
