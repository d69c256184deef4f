"""Target-corpus evaluation: linear probing, fine-tuning protocol, metrics, result files."""

from .metrics import classification_metrics
from .protocol import (
    FinetuneConfig,
    embed,
    finetune_protocol,
    fit_linear_probe,
    linear_probe,
    split_finetune_validation,
)
from .results import console_table, rows_from, summary, write_results

__all__ = [
    "FinetuneConfig",
    "classification_metrics",
    "console_table",
    "embed",
    "finetune_protocol",
    "fit_linear_probe",
    "linear_probe",
    "rows_from",
    "split_finetune_validation",
    "summary",
    "write_results",
]
