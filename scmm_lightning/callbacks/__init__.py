"""Callbacks."""

from .evaluation import CrossCorpusTransfer, LinearProbe
from .run_summary import RunSummary

__all__ = ["CrossCorpusTransfer", "LinearProbe", "RunSummary"]
