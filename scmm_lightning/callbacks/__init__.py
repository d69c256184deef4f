"""Callbacks: resumable atomic checkpoints, linear probing during pre-training, the transfer protocol
at its end, a run summary."""

from .checkpoint import RunCheckpoint
from .diagnostics import RepresentationDiagnostics
from .probe import LinearProbe
from .run_summary import RunSummary
from .transfer import CrossCorpusTransfer

__all__ = ["CrossCorpusTransfer", "LinearProbe", "RepresentationDiagnostics", "RunCheckpoint", "RunSummary"]
