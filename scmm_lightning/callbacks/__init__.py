"""Callbacks."""

from .run_summary import RunSummary

__all__ = ["RunSummary"]
