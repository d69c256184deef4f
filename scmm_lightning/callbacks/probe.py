"""Linear probing of the target corpus during pre-training."""

from __future__ import annotations

from typing import Literal

import lightning as L

from ..evaluation import L2_GRID, FinetuneConfig, evaluated_encoders, evaluation_target, probe_summary
from ..evaluation.transfer import has_evaluation_target
from ..field_types import check_arguments, init_hints


class LinearProbe(L.Callback):
    """Every ``every_n_epochs`` epochs (and after the last), embed the target corpus with the frozen
    encoder and fit a logistic-regression probe per target subject on its training trials (one probe
    across subjects on a cross-subject split), its L2 chosen from ``l2_grid`` by ``folds``-fold
    cross-validation grouped by trial (cross-subject: by subject), or with ``selection: holdout`` on
    one validation part (every class's latest ``val_trials_per_class`` trial(s); cross-subject: the
    last ``val_subjects`` training subjects), then refitted on all of them. Logs the means over target
    subjects of test accuracy, balanced accuracy, macro-F1 (``probe/acc_mean``, ``probe/bacc_mean``,
    ``probe/f1_mean``) and the validation figure (``probe/val_bacc_mean``, the one to select on).
    With ``compare_controls`` the same probe on a randomly initialised encoder and on the raw input
    features is logged once (``probe/random_init_*``, ``probe/raw_features_*``). Runs on every DDP
    rank, each fitting its share of the probes.

    Args:
        every_n_epochs: probing period.
        l2_grid: L2 penalties tried on validation.
        compare_controls: also probe a random-init encoder and the raw features (the controls).
        log_per_subject: log ``probe/acc_subject{S}`` too.
        balanced: weight classes inversely to their frequency in the probe's loss (unbalanced classes).
        val_trials_per_class: validation trials per class and subject (as in fine-tuning).
        val_subjects: cross-subject splits: validation subjects (``holdout``).
        selection: ``cv`` (K-fold, grouped by trial or subject) or ``holdout`` (one validation part).
        folds: cross-validation folds.
    """

    def __init__(
        self,
        every_n_epochs: int = 5,
        l2_grid: tuple[float, ...] = L2_GRID,
        compare_controls: bool = True,
        log_per_subject: bool = True,
        balanced: bool = False,
        val_trials_per_class: int = 1,
        val_subjects: int | list[int] = 1,
        selection: Literal["cv", "holdout"] = "cv",
        folds: int = 4,
    ) -> None:
        check_arguments(locals(), init_hints(type(self), LinearProbe), "LinearProbe.init_args", "LinearProbe")
        self.every_n_epochs = every_n_epochs
        self.l2_grid = tuple(l2_grid)
        self.balanced = balanced
        self.compare_controls = compare_controls
        self.log_per_subject = log_per_subject
        self.config = FinetuneConfig(
            val_trials_per_class=val_trials_per_class, val_subjects=val_subjects, selection=selection, folds=folds
        )
        self.controls: dict[str, float] | None = None
        self.history: list[dict[str, float]] = []
        self.enabled = True

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # checked before pre-training (the datamodule is set up by now), not after it
        self.enabled = has_evaluation_target(trainer.datamodule, "LinearProbe")

    def probe(self, encoders, target, progress: bool = False) -> dict[str, float]:  # noqa: ANN001
        return probe_summary(encoders, target, self.config, self.l2_grid, self.balanced, self.log_per_subject, progress)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        last = trainer.max_epochs is not None and epoch >= trainer.max_epochs
        if not self.enabled or not (epoch % self.every_n_epochs == 0 or last or trainer.fast_dev_run):
            return
        target = evaluation_target(trainer.datamodule)
        encoders = evaluated_encoders(pl_module, self.compare_controls and self.controls is None)
        config = self.config
        if trainer.fast_dev_run:  # a smoke run: one hold-out split instead of K folds, to exercise the code
            self.config = FinetuneConfig(**{**vars(config), "selection": "holdout"})
        try:
            values = self.probe(encoders, target, progress=trainer.progress_bar_callback is not None)
        finally:
            self.config = config
        if len(encoders) > 1:  # the controls do not change during pre-training: probed once
            self.controls = {k: v for k, v in values.items() if k.startswith(("random_init_", "raw_features_"))}
        values = {
            **{k: v for k, v in values.items() if not k.startswith(("random_init_", "raw_features_"))},
            **(self.controls or {}),
        }
        metrics = {f"probe/{k}": v for k, v in values.items()}
        self.history.append({"epoch": epoch, **metrics})
        pl_module.log_dict(metrics, on_step=False, on_epoch=True, rank_zero_only=True)
