"""Classification metrics over the classes present in the part scored, for binary and multi-class targets."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics.functional.classification import binary_auroc, multiclass_confusion_matrix


def classification_metrics(logits: Tensor, target: Tensor, num_classes: int) -> dict[str, float | Tensor | str]:
    """Accuracy; balanced accuracy = mean recall over the classes PRESENT in ``target`` (as
    scikit-learn's ``balanced_accuracy_score``: a class absent from the scored part has no recall,
    and a prediction of it is simply an error of the true class); macro-F1 over the same present
    classes (``f1_score(average="macro", labels=present)``); AUROC (binary: on P(class 1);
    multi-class: macro one-vs-rest over the present classes; NaN with fewer than two present); the
    confusion matrix (rows true, columns predicted, every corpus class) and ``test_classes``, the
    present classes as ``"0;1;2"``."""
    logits, target = logits.float(), target.long()
    pred = logits.argmax(dim=1)
    probs = torch.softmax(logits, dim=1)
    present = torch.unique(target)
    confusion = multiclass_confusion_matrix(pred, target, num_classes)
    tp = confusion.diagonal().float()
    recall = tp[present] / confusion.sum(1).float()[present]
    predicted = confusion.sum(0).float()[present]
    precision = torch.where(predicted > 0, tp[present] / predicted.clamp_min(1), 0.0)
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp_min(1e-12), 0.0)
    acc = (pred == target).float().mean().item() if len(target) else float("nan")
    if len(present) < 2:
        auroc = float("nan")
    elif num_classes == 2:
        auroc = binary_auroc(probs[:, 1], target).item()
    else:
        auroc = float(torch.stack([binary_auroc(probs[:, c], (target == c).long()) for c in present.tolist()]).mean())
    return {
        "accuracy": acc,
        "balanced_accuracy": recall.mean().item() if len(present) else float("nan"),
        "macro_f1": f1.mean().item() if len(present) else float("nan"),
        "auroc": auroc,
        "confusion": confusion,
        "test_classes": ";".join(str(c) for c in present.tolist()),
    }


def present_class_balanced_accuracy(logits: Tensor, target: Tensor) -> float:
    """Mean recall over the classes present in ``target`` (validation parts may lack a class of the
    corpus; an absent class has no recall to average)."""
    pred = logits.argmax(dim=1)
    recalls = [(pred[target == c] == c).float().mean() for c in torch.unique(target)]
    return float(torch.stack(recalls).mean()) if recalls else float("nan")


def present_class_balanced_accuracies(logits: Tensor, y: Tensor, mask: Tensor, num_classes: int) -> Tensor:
    """:func:`present_class_balanced_accuracy` of M models at once (float32, the same figures):
    ``logits`` (M, n, K), ``y`` (M, n) labels, ``mask`` (M, n) the rows each model is scored on."""
    pred = logits.argmax(-1)
    onehot = torch.nn.functional.one_hot(y, num_classes).bool() & mask[..., None]
    count = onehot.sum(1)
    hits = (onehot & (pred == y)[..., None]).sum(1)
    recall = hits.float() / count.clamp_min(1).float()
    present = count > 0
    return (recall * present).sum(1) / present.sum(1).clamp_min(1).float()


TIE = 1e-6
"""Validation balanced accuracies closer than this are equal. They are float32 means of recalls, and
fractions equal in exact arithmetic come out apart by float32 rounding: of the 57 balanced
accuracies attainable on 28 + 28 validation windows, 29 have two float32 forms (3/56 as
0.05357142910 and 0.05357143283, up to 6e-8 apart; rounding to 9 decimals merges none of them),
so a rule "ties: the lower loss" compared exactly would break such ties on rounding. Two balanced
accuracies that differ in exact arithmetic differ by at least 1 / (classes x the least common
multiple of the class sizes): 5e-5 for two classes of up to 100 windows, 2.7e-5 for three of 28,
29 and 30; closer than ``TIE`` only for near-coprime sizes (4 classes of 25, 27, 28 and 29: 4.6e-7;
2 of 1,200 and 1,201: 3.5e-7), a difference no choice should rest on, which the loss then decides.
Every choice made on a validation balanced accuracy (the probe's L2, a fine-tuning checkpoint, in
either engine and across folds) compares through it."""


def improves(candidate: tuple[float, float], incumbent: tuple[float, float] | None) -> bool:
    """Whether a checkpoint scoring ``candidate`` = (validation balanced accuracy, validation loss)
    replaces the one kept so far, ``incumbent`` (``None``: none yet): a balanced accuracy higher by
    more than :data:`TIE`, or one within :data:`TIE` and a lower loss; a tie on both keeps the
    earlier checkpoint. A NaN balanced accuracy (no validation rows) never replaces one."""
    if incumbent is None:
        return True
    (bacc, loss), (best_bacc, best_loss) = candidate, incumbent
    return bacc > best_bacc + TIE or (abs(bacc - best_bacc) <= TIE and loss < best_loss)
