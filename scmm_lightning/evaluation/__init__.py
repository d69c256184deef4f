"""Target-corpus evaluation: metrics, linear probing, the fine-tuning protocol, paired statistics,
result tables, and the transfer run that ties them together."""

from .finetune import FinetuneConfig, finetune, split_finetune_validation
from .metrics import classification_metrics, present_class_balanced_accuracy
from .probe import L2_GRID, FlattenFeatures, embed, fit_linear_probe, select_and_fit_probe
from .protocol import finetune_protocol, is_cross_subject, linear_probe, protocol_parts, run_protocol
from .results import console_table, read_rows, rows_from, summary, write_comparison, write_results
from .statistics import compare_methods, paired_comparison, paired_spread_comparison
from .transfer import evaluated_encoders, evaluation_target, probe_summary, random_encoder, run_transfer

__all__ = [
    "L2_GRID",
    "FinetuneConfig",
    "FlattenFeatures",
    "classification_metrics",
    "compare_methods",
    "console_table",
    "embed",
    "evaluated_encoders",
    "evaluation_target",
    "finetune",
    "finetune_protocol",
    "fit_linear_probe",
    "is_cross_subject",
    "linear_probe",
    "paired_comparison",
    "paired_spread_comparison",
    "present_class_balanced_accuracy",
    "probe_summary",
    "protocol_parts",
    "random_encoder",
    "read_rows",
    "rows_from",
    "run_protocol",
    "run_transfer",
    "select_and_fit_probe",
    "split_finetune_validation",
    "summary",
    "write_comparison",
    "write_results",
]
