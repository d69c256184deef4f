"""Target-corpus evaluation: embeddings, per-subject linear probing and per-subject fine-tuning.

Honest by construction: the epoch of a fine-tuning run is chosen on a validation part carved from
that subject's fine-tuning trials (its last ``val_trials`` trials), never on test trials. The
best test accuracy over epochs (the authors' protocol) is reported only as a labelled, optimistic
figure for comparison with published numbers.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.windows import WindowDataset
from ..model import ClassifierHead
from .metrics import classification_metrics


def subject_seed(seed: int, subject: int, salt: int = 0) -> int:
    return int(np.random.SeedSequence([seed & 0xFFFFFFFF, subject, salt]).generate_state(1)[0])


@torch.no_grad()
def embed(encoder: nn.Module, x: Tensor, batch_size: int = 1024) -> Tensor:
    """Encoder outputs of ``x`` in eval mode (BatchNorm on running statistics); mode restored."""
    was_training = encoder.training
    encoder.eval()
    device = next(encoder.parameters()).device
    out = torch.cat([encoder(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)])
    encoder.train(was_training)
    return out


def fit_linear_probe(
    train_x: Tensor,
    train_y: Tensor,
    num_classes: int,
    l2: float = 1e-3,
    max_iter: int = 100,
    balanced: bool = False,
) -> Callable[[Tensor], Tensor]:
    """Multinomial logistic regression on standardised features (statistics of ``train_x``), full
    batch L-BFGS with an L2 penalty; ``balanced`` weights each class by n / (K * n_class). Returns a
    function mapping features to logits."""
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    xs = (train_x - mean) / std
    weight = torch.zeros(xs.shape[1], num_classes, requires_grad=True)
    bias = torch.zeros(num_classes, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")
    class_weight = None
    if balanced:
        counts = torch.bincount(train_y, minlength=num_classes).float()
        class_weight = torch.where(counts > 0, len(train_y) / (num_classes * counts.clamp_min(1)), 0.0)

    def closure() -> Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(xs @ weight + bias, train_y, weight=class_weight) + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    w, b = weight.detach(), bias.detach()
    return lambda x: ((x - mean) / std) @ w + b


def subjects_of(train: WindowDataset, test: WindowDataset | None) -> list[int]:
    subjects = set(train.meta["subject"].tolist())
    if test is not None:
        subjects &= set(test.meta["subject"].tolist())
    return sorted(subjects)


def is_cross_subject(train: WindowDataset, test: WindowDataset) -> bool:
    """True when no subject has windows on both sides (leave-subjects-out splits)."""
    return set(train.meta["subject"].tolist()).isdisjoint(test.meta["subject"].tolist())


def linear_probe(
    encoder: nn.Module,
    train: WindowDataset,
    test: WindowDataset,
    num_classes: int,
    l2: float = 1e-3,
    balanced: bool = False,
) -> dict[int, dict[str, float | Tensor]]:
    """Per target subject: probe fitted on its training windows, scored on its test windows. On a
    cross-subject split (no subject on both sides) one probe is fitted on every training subject
    and scored on each test subject."""
    train_h, test_h = embed(encoder, train.x), embed(encoder, test.x)
    if is_cross_subject(train, test):
        probe = fit_linear_probe(train_h, train.meta["label"], num_classes, l2, balanced=balanced)
        logits, subject = probe(test_h), test.meta["subject"]
        return {
            int(s): classification_metrics(logits[subject == s], test.meta["label"][subject == s], num_classes)
            for s in torch.unique(subject).tolist()
        }
    results = {}
    for subject in subjects_of(train, test):
        tr = train.meta["subject"] == subject
        te = test.meta["subject"] == subject
        probe = fit_linear_probe(train_h[tr], train.meta["label"][tr], num_classes, l2, balanced=balanced)
        results[subject] = classification_metrics(probe(test_h[te]), test.meta["label"][te], num_classes)
    return results


@dataclass
class FinetuneConfig:
    """Fine-tuning of encoder + classifier head per target subject.

    Args:
        epochs: fine-tuning epochs.
        batch_size: batch size.
        lr: Adam learning rate (cosine-annealed over the epochs, stepped once per epoch).
        betas: Adam betas.
        weight_decay: Adam weight decay.
        val_trials: the last this-many fine-tuning trials of each subject form the validation part
            that chooses the epoch.
        hidden: hidden width of the head (Linear -> sigmoid -> Linear).
        freeze_encoder: train the head only.
        val_subjects: on a cross-subject split (no subject on both sides), one model is fine-tuned
            on every training subject and the last this-many training subjects (by id) are its
            validation part instead of ``val_trials``.
    """

    epochs: int = 50
    batch_size: int = 128
    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 3e-4
    val_trials: int = 2
    hidden: int = 128
    freeze_encoder: bool = False
    val_subjects: int = 1


def split_finetune_validation(meta: dict[str, Tensor], val_trials: int) -> tuple[Tensor, Tensor]:
    """Of one subject's fine-tuning windows: (train mask, validation mask); validation = the last
    ``val_trials`` trials (by trial id, per session)."""
    trial, session = meta["trial"], meta["session"]
    val = torch.zeros_like(trial, dtype=torch.bool)
    for s in torch.unique(session):
        in_s = session == s
        trials = torch.unique(trial[in_s])
        if val_trials >= len(trials):
            raise ValueError(
                f"val_trials={val_trials} leaves no fine-tuning trials (session {int(s)} has {len(trials)})"
            )
        val |= in_s & torch.isin(trial, trials[len(trials) - val_trials :])
    return ~val, val


def finetune_subject(
    encoder: nn.Module,
    num_classes: int,
    train_x: Tensor,
    train_y: Tensor,
    val_x: Tensor,
    val_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    config: FinetuneConfig,
    seed: int,
    test_groups: Tensor | None = None,
) -> dict:
    """Fine-tune a copy of ``encoder`` with a fresh head; choose the epoch by validation accuracy
    (ties: lower validation loss, then the earlier epoch); return test metrics of that epoch plus the
    per-epoch histories, and with ``test_groups`` (e.g. subject ids) metrics per group under ``groups``."""
    device = next(encoder.parameters()).device
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

    history = {"val_acc": [], "val_loss": [], "test_acc": []}
    best_key, best_state = None, None
    model.train()
    n = len(train_x)
    for epoch in range(config.epochs):
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
        val_acc = (val_logits.argmax(1) == val_y).float().mean().item()
        test_logits, _ = evaluate(test_x, test_y)
        history["val_acc"].append(val_acc)
        history["val_loss"].append(val_loss)
        history["test_acc"].append(
            (test_logits.argmax(1) == test_y).float().mean().item()
        )  # reported, never used to select
        key = (val_acc, -val_loss)
        if best_key is None or key > best_key:
            best_key, best_epoch = key, epoch
            best_state = copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    test_logits, _ = evaluate(test_x, test_y)
    metrics = classification_metrics(test_logits, test_y, num_classes)
    if test_groups is not None:
        metrics["groups"] = {
            int(g): classification_metrics(test_logits[test_groups == g], test_y[test_groups == g], num_classes)
            for g in torch.unique(test_groups).tolist()
        }
    metrics.update(
        best_epoch=best_epoch,
        val_acc=history["val_acc"][best_epoch],
        optimistic_best_test_acc=max(history["test_acc"]),
        history=history,
    )
    return metrics


def finetune_protocol(
    encoder: nn.Module,
    train: WindowDataset,
    test: WindowDataset,
    num_classes: int,
    config: FinetuneConfig,
    seed: int,
    subjects: list[int] | None = None,
) -> dict[int, dict]:
    """Run :func:`finetune_subject` for every target subject (or ``subjects``); on a cross-subject
    split, :func:`finetune_cross_subject`."""
    if is_cross_subject(train, test):
        return finetune_cross_subject(encoder, train, test, num_classes, config, seed, subjects)
    results = {}
    for subject in subjects if subjects is not None else subjects_of(train, test):
        tr = train.meta["subject"] == subject
        te = test.meta["subject"] == subject
        meta = {k: v[tr] for k, v in train.meta.items()}
        fit_mask, val_mask = split_finetune_validation(meta, config.val_trials)
        x, y = train.x[tr], train.meta["label"][tr]
        results[subject] = finetune_subject(
            encoder,
            num_classes,
            x[fit_mask],
            y[fit_mask],
            x[val_mask],
            y[val_mask],
            test.x[te],
            test.meta["label"][te],
            config,
            subject_seed(seed, subject),
        )
        results[subject]["n_finetune"], results[subject]["n_val"] = int(fit_mask.sum()), int(val_mask.sum())
        results[subject]["n_test"] = int(te.sum())
    return results


def finetune_cross_subject(
    encoder: nn.Module,
    train: WindowDataset,
    test: WindowDataset,
    num_classes: int,
    config: FinetuneConfig,
    seed: int,
    subjects: list[int] | None = None,
) -> dict[int, dict]:
    """One model fine-tuned on every training subject, the epoch chosen on the last
    ``config.val_subjects`` training subjects, scored on each test subject (or ``subjects``)."""
    train_subjects = sorted(set(train.meta["subject"].tolist()))
    if config.val_subjects >= len(train_subjects):
        raise ValueError(
            f"val_subjects={config.val_subjects} leaves no fine-tuning subject ({len(train_subjects)} train subjects)"
        )
    val = torch.isin(train.meta["subject"], torch.tensor(train_subjects[len(train_subjects) - config.val_subjects :]))
    te = torch.ones(len(test), dtype=torch.bool)
    if subjects is not None:
        te = torch.isin(test.meta["subject"], torch.tensor(subjects))
    y = train.meta["label"]
    out = finetune_subject(
        encoder,
        num_classes,
        train.x[~val],
        y[~val],
        train.x[val],
        y[val],
        test.x[te],
        test.meta["label"][te],
        config,
        subject_seed(seed, 0, 1),
        test_groups=test.meta["subject"][te],
    )
    shared = {k: out[k] for k in ("best_epoch", "val_acc", "optimistic_best_test_acc", "history")}
    results = {}
    for subject, metrics in out["groups"].items():
        results[subject] = {**metrics, **shared}
        results[subject]["n_finetune"], results[subject]["n_val"] = int((~val).sum()), int(val.sum())
        results[subject]["n_test"] = int((test.meta["subject"] == subject).sum())
    return results
