"""Classification metrics (torchmetrics), correct for binary and multi-class targets."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics.functional.classification import (
    binary_auroc,
    multiclass_accuracy,
    multiclass_auroc,
    multiclass_confusion_matrix,
    multiclass_f1_score,
)


def classification_metrics(logits: Tensor, target: Tensor, num_classes: int) -> dict[str, float | Tensor]:
    """Accuracy, balanced accuracy (mean per-class recall), macro-F1, AUROC (binary: on P(class 1); multi-class: macro one-vs-rest) and the
    confusion matrix (rows true, columns predicted). Classes absent from ``target`` make AUROC NaN."""
    logits, target = logits.float(), target.long()
    pred = logits.argmax(dim=1)
    probs = torch.softmax(logits, dim=1)
    acc = multiclass_accuracy(pred, target, num_classes, average="micro").item()
    balanced = multiclass_accuracy(pred, target, num_classes, average="macro").item()
    f1 = multiclass_f1_score(pred, target, num_classes, average="macro").item()
    present = torch.unique(target).numel()
    if present < 2:
        auroc = float("nan")
    elif num_classes == 2:
        auroc = binary_auroc(probs[:, 1], target).item()
    else:
        auroc = multiclass_auroc(probs, target, num_classes, average="macro").item()
    confusion = multiclass_confusion_matrix(pred, target, num_classes)
    return {"accuracy": acc, "balanced_accuracy": balanced, "macro_f1": f1, "auroc": auroc, "confusion": confusion}


def present_class_balanced_accuracy(logits: Tensor, target: Tensor) -> float:
    """Mean recall over the classes present in ``target`` (validation parts may lack a class of the
    corpus; an absent class has no recall to average)."""
    pred = logits.argmax(dim=1)
    recalls = [(pred[target == c] == c).float().mean() for c in torch.unique(target)]
    return float(torch.stack(recalls).mean()) if recalls else float("nan")
