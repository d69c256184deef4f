"""Fine-tuning protocol: per target subject (or across subjects), encoder + fresh head trained on
the fine-tuning trials, the epoch chosen on a validation part carved from them, scored on test.

Honest by construction: the validation part holds, for every class present in a subject's
fine-tuning trials, its latest ``val_trials_per_class`` trial(s) (on a cross-subject split: the last
``val_subjects`` training subjects); the epoch is chosen by validation balanced accuracy (ties: lower
validation loss, then the earlier epoch), never on test trials. The best test accuracy over epochs
(the authors' protocol) is reported only as a labelled, optimistic figure.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..model import ClassifierHead
from .metrics import classification_metrics, present_class_balanced_accuracy
from .probe import module_device


@dataclass
class FinetuneConfig:
    """Fine-tuning of encoder + classifier head.

    Args:
        epochs: fine-tuning epochs (the most, with ``patience``).
        batch_size: batch size.
        lr: Adam learning rate (cosine-annealed over ``epochs``, stepped once per epoch).
        betas: Adam betas.
        weight_decay: Adam weight decay.
        val_trials_per_class: per subject and session, the latest this-many fine-tuning trials of
            every class form the validation part that chooses the epoch.
        hidden: hidden width of the head (Linear -> sigmoid -> Linear).
        freeze_encoder: train the head only.
        val_subjects: on a cross-subject split (no subject on both sides), one model is fine-tuned
            on every training subject but the validating ones: the last this-many training subjects
            (by id), or, given a list, those subject ids (e.g. to rotate them over folds).
        patience: stop when validation balanced accuracy has not improved for this many epochs
            (``None``: train every epoch; the chosen epoch is the same either way up to the stop).
        engine: ``batched`` trains every model of a protocol call together as stacked models
            (``evaluation/batched.py``; same seeds, batches, Adam steps and selection as the loop);
            ``loop`` trains them one after another (the reference the batched engine is tested
            against); ``auto``: batched on an accelerator, the loop on the CPU, where the stacked
            models were measured no faster (0.9-1.1x on 2 cores, ``benchmarks/evaluation.py``: the
            small CNN is bound by arithmetic and memory traffic there, not by per-model overhead) and
            use ~2.6x the memory. The probe solves its problems together unless ``loop``.
    """

    epochs: int = 50
    batch_size: int = 128
    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 3e-4
    val_trials_per_class: int = 1
    hidden: int = 128
    freeze_encoder: bool = False
    val_subjects: int | list[int] = 1
    patience: int | None = None
    engine: Literal["auto", "batched", "loop"] = "auto"


def split_finetune_validation(
    meta: dict[str, Tensor], per_class: int, subject: int | None = None
) -> tuple[Tensor, Tensor]:
    """Of one subject's fine-tuning windows: (train mask, validation mask). Per session, for every
    class present, its latest ``per_class`` trials (by trial id) validate; each class must keep at
    least one fine-tuning trial, else an error names the subject and the classes."""
    trial, session, label = meta["trial"], meta["session"], meta["label"]
    val = torch.zeros_like(trial, dtype=torch.bool)
    for s in torch.unique(session).tolist():
        in_s = session == s
        short = []
        for c in torch.unique(label[in_s]).tolist():
            trials = torch.unique(trial[in_s & (label == c)])
            if len(trials) <= per_class:
                short.append((c, len(trials)))
                continue
            val |= in_s & torch.isin(trial, trials[len(trials) - per_class :])
        if short:
            who = f"subject {subject} " if subject is not None else ""
            raise ValueError(
                f"{who}session {s}: classes {[c for c, _ in short]} have only {[n for _, n in short]} fine-tuning "
                f"trial(s); val_trials_per_class={per_class} needs more than that per class (lower it, or give this "
                "subject more fine-tuning trials with the target split)"
            )
    return ~val, val


def fit_summary(logits: Tensor, y: Tensor, num_classes: int) -> dict[str, float]:
    """How well a model fits its own training rows at the selected epoch: ``train_accuracy``, and
    ``train_balanced_accuracy`` next to ``train_chance`` (1 / the classes present), which is what
    predicting the majority class (or any one class) scores: a model at or below it has learnt
    nothing it can show, whether its loss was class-weighted or not."""
    return {
        "train_accuracy": (logits.argmax(1) == y).float().mean().item(),
        "train_balanced_accuracy": present_class_balanced_accuracy(logits, y),
        "train_chance": 1.0 / len(torch.unique(y)),
    }


def finetune(
    encoder: nn.Module,
    num_classes: int,
    train: tuple[Tensor, Tensor],
    val: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    config: FinetuneConfig,
    seed: int,
    test_groups: Tensor | None = None,
) -> dict:
    """Fine-tune a copy of ``encoder`` with a fresh head on ``train`` (x, y); after each epoch score
    ``val``; keep the epoch with the best validation balanced accuracy (ties: lower validation loss,
    then the earlier epoch); return test metrics of that epoch plus the per-epoch histories, and with
    ``test_groups`` (e.g. subject ids) metrics per group under ``groups``."""
    train_x, train_y = train
    val_x, val_y = val
    test_x, test_y = test
    device = module_device(encoder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(
            copy.deepcopy(encoder), ClassifierHead(encoder.out_features, num_classes, config.hidden)
        ).to(device)
    if config.freeze_encoder:
        model[0].requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=config.lr, betas=tuple(config.betas), weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(config.epochs, 1))
    gen = torch.Generator().manual_seed(seed)

    def evaluate(x: Tensor, y: Tensor) -> tuple[Tensor, float]:
        model.eval()
        with torch.no_grad():
            logits = torch.cat([model(x[i : i + 1024].to(device)).float().cpu() for i in range(0, len(x), 1024)])
        model.train()
        return logits, F.cross_entropy(logits, y).item()

    history: dict[str, list[float]] = {"val_bacc": [], "val_acc": [], "val_loss": [], "test_acc": [], "lr": []}
    best_key, best_state, best_epoch = None, None, 0
    model.train()
    n = len(train_x)
    for epoch in range(config.epochs):
        history["lr"].append(opt.param_groups[0]["lr"])
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, config.batch_size):
            idx = order[i : i + config.batch_size]
            if len(idx) < 2:  # BatchNorm needs two rows
                continue
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(train_x[idx].to(device)), train_y[idx].to(device))
            loss.backward()
            opt.step()
        sched.step()
        val_logits, val_loss = evaluate(val_x, val_y)
        val_bacc = present_class_balanced_accuracy(val_logits, val_y)
        test_logits, _ = evaluate(test_x, test_y)  # reported as the optimistic figure, never used to select
        history["val_bacc"].append(val_bacc)
        history["val_acc"].append((val_logits.argmax(1) == val_y).float().mean().item())
        history["val_loss"].append(val_loss)
        history["test_acc"].append((test_logits.argmax(1) == test_y).float().mean().item())
        key = (val_bacc, -val_loss)
        if best_key is None or key > best_key:
            best_key, best_epoch = key, epoch
            best_state = copy.deepcopy(model.state_dict())
        elif config.patience is not None and epoch - best_epoch >= config.patience:
            break
    model.load_state_dict(best_state)
    test_logits, _ = evaluate(test_x, test_y)
    train_logits, _ = evaluate(train_x, train_y)
    metrics = classification_metrics(test_logits, test_y, num_classes)
    metrics.update(fit_summary(train_logits, train_y, num_classes))
    if test_groups is not None:
        metrics["groups"] = {
            int(g): classification_metrics(test_logits[test_groups == g], test_y[test_groups == g], num_classes)
            for g in torch.unique(test_groups).tolist()
        }
    metrics.update(
        best_epoch=best_epoch,
        val_acc=history["val_acc"][best_epoch],
        val_balanced_accuracy=history["val_bacc"][best_epoch],
        val_loss=history["val_loss"][best_epoch],
        optimistic_best_test_acc=max(history["test_acc"]),
        history=history,
    )
    return metrics
