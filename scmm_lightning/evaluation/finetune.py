"""Fine-tuning one model: encoder + head trained on fine-tuning rows, scored at checkpoints on
validation rows (to choose the checkpoint) and on test rows (the reported figures at the chosen
checkpoint; the best test accuracy over checkpoints, the authors' protocol, only as a labelled
optimistic figure). Two recipes (``FinetuneConfig.recipe``):

- ``lpft`` (linear probing, then fine-tuning; Kumar et al., ICLR 2022): the head is the fitted linear
  probe (standardisation folded in), so checkpoint 0 IS the probe; then encoder and head train
  together with Adam at constant learning rates (``encoder_lr`` for the encoder, ``lr`` for the
  head) for ``steps`` optimizer steps (or both rates cosine-annealed over them: ``lr_schedule``),
  checkpoints every ``eval_every`` steps. The encoder runs in
  eval mode (BatchNorm on its running statistics, which stay as they were; no dropout): the
  function the probe was fitted on is the one fine-tuning starts from, and a few hundred small
  batches of one subject do not re-estimate normalisation statistics well. A budget in steps (not
  epochs) gives SEED's 1 s and SEED-IV's 4 s windows comparable numbers of updates.
- ``reference`` (the authors' protocol, made honest): a fresh ``Linear -> sigmoid -> Linear`` head,
  Adam at ``lr`` cosine-annealed over ``epochs``, a checkpoint after every epoch.

Which checkpoint is reported is chosen by the protocol (``protocol.py``): the best validation
balanced accuracy of this model (ties, within ``metrics.TIE``: lower validation loss, then the
earlier checkpoint), or with ``select_at`` a checkpoint fixed beforehand (chosen by
cross-validation, or the budget's last under ``selection: fixed``); never on test rows.
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..field_types import check_field_types
from ..model import ClassifierHead
from ..seeding import seeded
from .metrics import classification_metrics, improves, present_class_balanced_accuracy
from .probe import class_balance_weights, module_device


@dataclass
class FinetuneConfig:
    """Fine-tuning of encoder + classifier head.

    Args:
        epochs: ``reference``: fine-tuning epochs (the most, with ``patience``).
        batch_size: batch size (the authors' protocol used 128).
        lr: Adam learning rate: ``reference``: of the whole model, cosine-annealed over ``epochs``
            (stepped once per epoch); ``lpft``: of the head, constant.
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
            (``None``: train every epoch; the chosen epoch is the same either way up to the stop;
            ignored by ``selection: fixed``, which trains and validates the whole budget).
        engine: ``batched`` trains every model of a protocol call together as stacked models
            (``evaluation/batched.py``; either recipe; same seeds, batches, Adam steps and selection
            as the loop); ``loop`` trains them one after another (the reference the batched engine
            is tested against); ``auto`` (default): batched, on the CPU too (2 cores,
            ``benchmarks/evaluation.py``: the reference protocol 3.1-4.8x faster than the loop, LP-FT
            2.6-5.7x, at ~1.45x the loop's peak memory; ``cv_model: ensemble`` keeps every fold
            model's weights at every checkpoint, of every job at once, where the loop keeps one
            job's: SEED -> DEAP's 32 subjects x 3 rows x 3 folds x 11 checkpoints of a 0.35 MiB CNN
            state are ~1.1 GiB on the encoders' device). The probe solves its problems together
            unless ``loop``.
        recipe: ``lpft`` (default: start from the fitted probe, fine-tune for ``steps``) or
            ``reference`` (the authors' fresh head and ``epochs``); module docstring.
        selection: ``fixed`` (default; every shipped config): no checkpoint is chosen: the probe's
            L2 as ``cv``, then one model fine-tuned on every fine-tuning row for the whole budget
            (``steps``; ``reference``: ``epochs``; no ``patience``) and its last checkpoint
            reported (under LP-FT's default ``ema_decay: auto``, its weights' moving average); its
            validation figures are the ``cv`` fold models' mean at that last checkpoint (they train
            the same budget), so a sweep or ``--validation_only`` judges the budget it reports. On
            eegmat (10 seeds) and the synthetic pair (6) it scored higher, with a smaller seed spread
            and selection gap, than ``cv`` on every CNN row (benchmarks/REAL_EEG_HISTORY.md); it cannot stop a
            model that overfits within the budget (``cv`` can).
            ``cv``: the probe's L2 and the fine-tuning checkpoint are chosen by the mean
            validation balanced accuracy over ``folds`` folds of the fine-tuning rows, grouped by
            trial (within-subject: fold f validates one trial of every class, per session; the
            latest trial for fold 0, the one before for fold 1, ...) or by subject (cross-subject:
            training subjects dealt over the folds), then the model is refitted on every
            fine-tuning row and the chosen checkpoint reported. ``holdout``: one validation part
            (``val_trials_per_class`` / ``val_subjects``) chooses, and the model trained without
            it is reported (the earlier protocol). ``cv_probe``: the probe's L2 as ``cv`` (the
            probe rows are ``cv``'s), the checkpoint as ``holdout``: LP-FT starts from a probe at
            that L2 fitted without the validation part, and the model trained without it is
            reported.
        folds: cross-validation folds (at most the number of trials of the best-provided class,
            or of training subjects).
        cv_model: with ``selection: cv``, what is reported at the chosen checkpoint: ``refit``, one
            model refitted on every fine-tuning row; ``ensemble``, the K fold models' mean softmax
            (no refit: every fine-tuning row still trains K-1 of the K models). On eegmat with the
            class-balanced loss (``benchmarks/real_eeg.py``, 10 seeds) and on the synthetic pair (6
            seeds) it lifted the CNN rows (by 0.6-2.8 points) and narrowed their selection gaps, but
            cost eegmat's raw-feature row 0.5 points: benchmarks/REAL_EEG_HISTORY.md, eighth attempt.
        steps: ``lpft``: optimizer steps per model.
        eval_every: ``lpft``: steps between checkpoints (checkpoint 0 = the probe itself).
        encoder_lr: ``lpft``: the encoder's Adam learning rate (``lr`` is the head's).
        lr_schedule: ``lpft``: ``constant`` (default) keeps both learning rates for all ``steps``;
            ``cosine`` runs optimizer step t (0, 1, ..., steps - 1) at both rates times
            ``0.5 (1 + cos(pi t / steps))`` (:meth:`lr_factor`: the full rates at the first step, near 0
            at the last; cosine annealing without restarts), so the late checkpoints move less from one
            to the next. Measured on eegmat: benchmarks/REAL_EEG_HISTORY.md.
        freeze_batchnorm: ``lpft``: the encoder's BatchNorm on its running statistics (module docstring).
        ema_decay: score and report an exponential moving average of the trained weights instead of
            the weights themselves: after every optimizer step ``a <- d a + (1 - d) w`` for every
            trained parameter ``w`` (``a`` starts at the initial weights, so LP-FT's checkpoint 0 is
            still the probe; buffers are the model's own). ``auto`` (default, every shipped config):
            ``d = 1 - 2 / steps`` under ``lpft`` (:meth:`moving_average_decay`: 0.99 at 200 steps, an
            average over about the last half of the budget, which keeps 0.99^200 = 13 % of the probe's
            weights; 0.967 at the demo's 60) and no average under ``reference`` (the authors' recipe);
            a number sets ``d`` itself; ``null`` turns it off (the default until session 21). A smoother
            path: what the last checkpoint reports depends less on the last few batches and on how far
            the budget overshoots. Why it is the default (benchmarks/REAL_EEG_HISTORY.md): on eegmat (10 seeds) it is
            the only budget measured that meets issue 21's gap and spread targets on every row (gaps
            0.018 / 0.021 / 0.001 vs 0.043 / 0.043 / 0.005 without it, spreads 0.010 / 0.012 / 0.002),
            and the validation columns rank it above the plain budget on every row; it costs the
            synthetic pair's CNN rows ~1 point and the SEED-IV dress rehearsal's 2-3 points, where
            fine-tuning keeps improving to the budget's end.
        fold_head_l2: ``lpft`` with ``selection: cv``: the L2 of the probe each fold model starts from.
            ``shared``: the L2 chosen by the mean over all K folds, fold f's own validation rows included,
            so checkpoint 0's figure on fold f carries that choice's optimism (the best of the grid on
            those very rows) and the checkpoint choice, on the same rows, compares a selected probe
            with fine-tuned checkpoints that were not selected; ``other_folds``: fold f's head at the L2
            best on the other K - 1 folds' validation rows (each fold's L2 chosen without its own
            validation rows, as in nested cross-validation). The probe row and the refit's head are the
            same either way (the L2 chosen on all folds). Measured on eegmat: benchmarks/REAL_EEG_HISTORY.md.
        class_balanced_loss: weight the fine-tuning loss's classes by n / (K * n_class) over the
            model's own fine-tuning rows (``F.cross_entropy(weight=...)``: per batch, the weighted
            mean) -- the objective of a class-balanced probe. ``None`` (default): as the probe, i.e.
            ``lpft`` from a class-balanced probe (``run_protocol(balanced_probe=True)``) fine-tunes
            on the balanced loss, everything else on the plain one; ``true`` / ``false`` force it.
            LP-FT starts at the probe's optimum so that fine-tuning does not first have to fix the
            head; on another objective it does exactly that: from a balanced probe, the plain loss
            first pulls the head towards the frequent class (on eegmat, 75 % rest, the test accuracy
            went from 0.645 at the probe to 0.75 at every later checkpoint, about the rest share).
            (The validation loss that breaks ties between checkpoints stays the plain mean.)
            Measured on eegmat: benchmarks/REAL_EEG_HISTORY.md.
        head_l2: ``lpft``: ``probe`` adds the probe's own penalty on the head to every batch's
            loss, ``l2 * ||V diag(s)||^2`` for the head's weight ``V`` (the probe's L2 ``l2`` on its
            standardised coordinates, ``s`` their standard deviations: ``Probe.head_penalty``), so
            that fine-tuning starts at a stationary point of its own objective (with the class
            balance of ``class_balanced_loss``); ``none`` (default): the batch loss alone, whose
            gradient at a strongly penalised probe pulls the head towards the unpenalised fit.
            Adam's ``weight_decay`` applies either way. Measured: benchmarks/REAL_EEG_HISTORY.md.
    """

    epochs: int = 50
    batch_size: int = 64
    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 3e-4
    val_trials_per_class: int = 1
    hidden: int = 128
    freeze_encoder: bool = False
    val_subjects: int | list[int] = 1
    patience: int | None = None
    engine: Literal["auto", "batched", "loop"] = "auto"
    recipe: Literal["lpft", "reference"] = "lpft"
    selection: Literal["cv", "holdout", "cv_probe", "fixed"] = "fixed"
    folds: int = 3
    cv_model: Literal["refit", "ensemble"] = "refit"
    steps: int = 200
    eval_every: int = 20
    encoder_lr: float = 5e-4
    lr_schedule: Literal["constant", "cosine"] = "constant"
    freeze_batchnorm: bool = True
    ema_decay: float | Literal["auto"] | None = "auto"
    fold_head_l2: Literal["shared", "other_folds"] = "shared"
    class_balanced_loss: bool | None = None
    head_l2: Literal["none", "probe"] = "none"

    def __post_init__(self) -> None:
        check_field_types(self, "finetune")  # e.g. recipe="LPFT" ran the reference recipe, silently
        if self.ema_decay is not None and self.ema_decay != "auto" and not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(
                f"finetune.ema_decay={self.ema_decay!r}: must be 'auto', a number in [0, 1) or null (no averaging)"
            )

    def moving_average_decay(self) -> float | None:
        """The decay ``d`` of the weights' moving average, ``None`` for none (``ema_decay``): ``auto``
        is ``1 - 2 / steps`` under ``lpft`` and none under ``reference``. Both engines read it here."""
        if self.ema_decay == "auto":
            return max(0.0, 1.0 - 2.0 / self.steps) if self.recipe == "lpft" and self.steps > 0 else None
        return self.ema_decay

    def lr_factor(self, step: int) -> float:
        """``lpft``: the factor on both learning rates at optimizer step ``step`` (0-based): 1, or with
        ``lr_schedule: cosine`` ``0.5 (1 + cos(pi step / steps))``. Both engines take their rates from here."""
        if self.recipe != "lpft" or self.lr_schedule == "constant":
            return 1.0
        return 0.5 * (1.0 + math.cos(math.pi * step / max(self.steps, 1)))

    def checkpoints(self) -> list[int]:
        """The checkpoints of one model: epochs (``reference``: after epoch e, e = 0 .. epochs-1) or
        optimizer steps (``lpft``: 0, eval_every, 2 eval_every, ..., steps)."""
        if self.recipe == "reference":
            return list(range(self.epochs))
        every = max(1, self.eval_every)
        return sorted({*range(0, self.steps, every), self.steps})


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


def balanced_selection_gap(test_bacc: list[float], chosen: int) -> float:
    """What selection left on the table, in the table's own metric: the best test balanced accuracy
    over checkpoints minus the chosen checkpoint's (over the whole test part the model is scored
    on). Measured in plain accuracy, the best checkpoint on a test part with a majority class can
    be one that predicts that class for everything (eegmat: 75 % of the windows are rest, and LP-FT's
    test accuracy after 20 steps sat at ~0.75 while cross-validation, rightly, kept the probe)."""
    finite = [a for a in test_bacc if a == a]
    return max(finite) - test_bacc[chosen] if finite and test_bacc[chosen] == test_bacc[chosen] else float("nan")


def random_choice_gap(test_bacc: list[float]) -> float:
    """What a checkpoint chosen uniformly at random would leave on the table, on average: the best
    test balanced accuracy over checkpoints minus their mean. Beside ``balanced_selection_gap`` it
    says whether the selection beat chance: a selection gap above it means the validation figures
    pointed away from the checkpoints that test better (with patience, over the checkpoints scored)."""
    finite = [a for a in test_bacc if a == a]
    return max(finite) - sum(finite) / len(finite) if finite else float("nan")


def batch_stream(n: int, batch_size: int, gen: torch.Generator):
    """Endless batches of row indices: a fresh permutation per pass, batches of ``batch_size`` (a
    last one of fewer than two rows is skipped: BatchNorm in training mode needs two)."""
    while n >= 2:
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, batch_size):
            idx = order[i : i + batch_size]
            if len(idx) >= 2:
                yield idx


def finetune(
    encoder: nn.Module,
    num_classes: int,
    train: tuple[Tensor, Tensor],
    val: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    config: FinetuneConfig,
    seed: int,
    test_groups: Tensor | None = None,
    head: nn.Module | None = None,
    select_at: int | None = None,
    keep_states: bool = False,
    head_penalty: tuple[float, Tensor] | None = None,
) -> dict:
    """Fine-tune a copy of ``encoder`` with ``head`` (``lpft``: the probe as an ``nn.Linear``;
    ``reference``: a fresh head from ``seed``) on ``train`` (x, y); at every checkpoint score
    ``val`` (may be empty) and ``test``; report the test metrics of the checkpoint with the best
    validation balanced accuracy (ties, within ``metrics.TIE``: lower validation loss, then the
    earlier one; ``metrics.improves``), or of
    checkpoint index ``select_at`` when given; plus per-checkpoint histories, and with
    ``test_groups`` (e.g. subject ids) metrics per group under ``groups``. ``keep_states``: the
    model (``module``) and its state at every checkpoint (``history["states"]``) come back too (the
    cross-validation ensemble scores the fold models at the checkpoint chosen over all folds).
    ``head_penalty``: ``(l2, s)``, add ``l2 * ||head.weight * s||^2`` to every batch's loss
    (``head_l2: probe``; ``Probe.head_penalty``)."""
    train_x, train_y = train
    val_x, val_y = val
    test_x, test_y = test
    device = module_device(encoder)
    lpft = config.recipe == "lpft"
    if lpft and head is None:
        raise ValueError("finetune.recipe lpft starts from the fitted probe: pass its head (Probe.as_linear())")
    with seeded(seed):
        if head is None:
            head = ClassifierHead(encoder.out_features, num_classes, config.hidden)
        model = nn.Sequential(copy.deepcopy(encoder), copy.deepcopy(head)).to(device)
    if config.freeze_encoder:
        model[0].requires_grad_(False)
    enc = [p for p in model[0].parameters() if p.requires_grad]
    groups = [{"params": list(model[1].parameters()), "lr": config.lr}]
    if enc:
        groups.append({"params": enc, "lr": config.encoder_lr if lpft else config.lr})
    opt = torch.optim.Adam(groups, betas=tuple(config.betas), weight_decay=config.weight_decay)
    sched = None if lpft else torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(config.epochs, 1))
    gen = torch.Generator().manual_seed(seed)

    def train_mode() -> None:
        model.train()
        if lpft and config.freeze_batchnorm:
            model[0].eval()  # BatchNorm on its running statistics: the function the probe was fitted on

    # the weights that are scored and kept: the model's, or their moving average (``ema_decay``)
    decay = config.moving_average_decay()
    scored = model if decay is None else copy.deepcopy(model)
    trained = [p for p in model.parameters() if p.requires_grad]
    averaged = [p for p, q in zip(scored.parameters(), model.parameters()) if q.requires_grad]

    def evaluate(x: Tensor, y: Tensor) -> tuple[Tensor, float]:
        if scored is not model:  # the average runs on the model's current buffers
            for a, b in zip(scored.buffers(), model.buffers()):
                a.copy_(b)
        scored.eval()
        with torch.no_grad():
            chunks = [scored(x[i : i + 1024].to(device)).float().cpu() for i in range(0, len(x), 1024)]
        train_mode()
        logits = torch.cat(chunks) if chunks else torch.zeros(0, num_classes)
        return logits, F.cross_entropy(logits, y).item() if len(y) else float("nan")

    weight = None  # the loss's class weights (``class_balanced_loss``)
    if config.class_balanced_loss:
        weight = class_balance_weights(train_y, num_classes).float().to(device)

    penalty = None if head_penalty is None else (head_penalty[0], head_penalty[1].to(device))

    def step(idx: Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(train_x[idx].to(device)), train_y[idx].to(device), weight=weight)
        if penalty is not None:
            loss = loss + penalty[0] * (model[1].weight * penalty[1]).pow(2).sum()
        loss.backward()
        opt.step()
        if scored is not model:
            with torch.no_grad():
                torch._foreach_lerp_(averaged, trained, 1.0 - decay)

    history: dict[str, list[float]] = {
        "val_bacc": [], "val_acc": [], "val_loss": [], "test_acc": [], "test_bacc": [], "lr": []
    }  # fmt: skip
    best: dict = {"key": None, "index": 0, "state": None, "test": None}

    def checkpoint(index: int) -> bool:
        """Score val and test now; keep this checkpoint if it is the selected one; False = stop."""
        val_logits, val_loss = evaluate(val_x, val_y)
        test_logits, _ = evaluate(test_x, test_y)  # the optimistic column, and the reported figures if selected
        val_bacc = present_class_balanced_accuracy(val_logits, val_y) if len(val_y) else float("nan")
        history["val_bacc"].append(val_bacc)
        history["val_acc"].append((val_logits.argmax(1) == val_y).float().mean().item() if len(val_y) else float("nan"))
        history["val_loss"].append(val_loss)
        history["test_acc"].append(
            (test_logits.argmax(1) == test_y).float().mean().item() if len(test_y) else float("nan")
        )
        history["test_bacc"].append(
            present_class_balanced_accuracy(test_logits, test_y) if len(test_y) else float("nan")
        )
        if keep_states:
            history.setdefault("states", []).append(copy.deepcopy(scored.state_dict()))
        if select_at is not None:
            chosen = index == select_at
        else:
            chosen = improves((val_bacc, val_loss), best["key"])
            if chosen:
                best["key"] = (val_bacc, val_loss)
        if chosen:
            best.update(index=index, state=copy.deepcopy(scored.state_dict()), test=test_logits)
        elif select_at is None and config.patience is not None and index - best["index"] >= config.patience:
            return False
        return True

    train_mode()
    if lpft:
        points = config.checkpoints()
        batches = batch_stream(len(train_x), config.batch_size, gen)
        done = 0
        rates = [group["lr"] for group in opt.param_groups]
        for index, target_step in enumerate(points):
            history["lr"].append(config.lr * config.lr_factor(max(target_step - 1, 0)))  # the last step's rate
            for number, idx in enumerate(itertools.islice(batches, target_step - done), start=done):
                for group, rate in zip(opt.param_groups, rates):
                    group["lr"] = rate * config.lr_factor(number)
                step(idx)
            done = target_step
            if not checkpoint(index):
                break
    else:
        n = len(train_x)
        for epoch in range(config.epochs):
            history["lr"].append(opt.param_groups[0]["lr"])
            order = torch.randperm(n, generator=gen)
            for i in range(0, n, config.batch_size):
                idx = order[i : i + config.batch_size]
                if len(idx) < 2:  # BatchNorm needs two rows
                    continue
                step(idx)
            sched.step()
            if not checkpoint(epoch):
                break
    model.load_state_dict(best["state"])
    if scored is not model:
        scored.load_state_dict(best["state"])
    train_logits, _ = evaluate(train_x, train_y)
    test_logits = best["test"]
    metrics = classification_metrics(test_logits, test_y, num_classes)
    metrics.update(fit_summary(train_logits, train_y, num_classes))
    if test_groups is not None:
        metrics["groups"] = {
            int(g): classification_metrics(test_logits[test_groups == g], test_y[test_groups == g], num_classes)
            for g in torch.unique(test_groups).tolist()
        }
    e = best["index"]
    finite = [a for a in history["test_acc"] if a == a]
    metrics.update(
        best_epoch=None if lpft else e,
        best_step=config.checkpoints()[e] if lpft else None,
        val_acc=history["val_acc"][e],
        val_balanced_accuracy=history["val_bacc"][e],
        val_loss=history["val_loss"][e],
        optimistic_best_test_acc=max(finite) if finite else float("nan"),
        balanced_selection_gap=balanced_selection_gap(history["test_bacc"], e),
        random_choice_gap=random_choice_gap(history["test_bacc"]),
        history=history,
    )
    if keep_states:
        metrics["module"] = model
    return metrics
