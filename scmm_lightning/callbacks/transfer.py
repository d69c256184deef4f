"""The cross-corpus fine-tuning protocol at the end of ``fit``."""

from __future__ import annotations

import lightning as L

from ..evaluation import FinetuneConfig, evaluation_target, run_transfer
from ..evaluation.probe import L2_GRID
from ..evaluation.transfer import has_evaluation_target
from ..field_types import check_arguments, init_hints


class CrossCorpusTransfer(L.Callback):
    """At the end of ``fit``: per target subject, probe the pre-trained encoder and fine-tune it on its
    fine-tuning trials (``finetune.recipe``: LP-FT from the fitted probe, or the authors' fresh
    head), the probe's L2 and the fine-tuning checkpoint chosen by validation balanced accuracy
    (``finetune.selection``: cross-validation folds grouped by trial, or one hold-out), and test on
    its test trials (each row carries its probe's figures too);
    likewise from a randomly initialised encoder and from the raw input features with
    ``compare_controls``. Runs on every DDP rank (each fine-tunes its share of the models);
    rank 0 writes ``transfer_results.{csv,md,png}`` and ``transfer_results_summary.json`` into the
    run directory, logs the means (``transfer/<method>/<metric>_mean``, validation figures under
    ``val_...``) and prints the table with the paired comparisons.

    Args:
        finetune: fine-tuning settings.
        compare_controls: also run the protocol from a random-init encoder and from the raw features.
        subjects: target subjects to evaluate (default all).
        out_dir: where result files go (default: the trainer's log directory).
        l2_grid: L2 penalties the probe (and LP-FT's starting head) chooses from.
        balanced: class-balanced probes (each class weighted n / (K * n_class), as
            ``LinearProbe(balanced=True)``) for targets whose classes are unequal (e.g. rest vs task
            recordings); LP-FT then fine-tunes on the same balanced loss (``finetune.class_balanced_loss``).
    """

    def __init__(
        self,
        finetune: FinetuneConfig | None = None,
        compare_controls: bool = True,
        subjects: list[int] | None = None,
        out_dir: str | None = None,
        l2_grid: tuple[float, ...] = L2_GRID,
        balanced: bool = False,
    ) -> None:
        check_arguments(
            locals(),
            init_hints(type(self), CrossCorpusTransfer),
            "CrossCorpusTransfer.init_args",
            "CrossCorpusTransfer",
        )
        self.finetune = finetune or FinetuneConfig()
        self.balanced = balanced
        self.l2_grid = tuple(l2_grid)
        self.compare_controls = compare_controls
        self.subjects = subjects
        self.out_dir = out_dir
        self.rows: list[dict] = []
        self.enabled = True

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.enabled = has_evaluation_target(trainer.datamodule, "CrossCorpusTransfer")

    def run(self, pl_module, target, out_dir, logger=None, quick: bool = False, progress: bool = True) -> list[dict]:  # noqa: ANN001
        """The protocol on ``target`` (call on every rank); ``quick`` (fast_dev_run): one epoch or two
        steps, two subjects, a hold-out instead of cross-validation, just to exercise the code."""
        config, subjects = self.finetune, self.subjects
        if quick:
            config = FinetuneConfig(
                **{**vars(config), "epochs": 1, "steps": 2, "eval_every": 1, "selection": "holdout"}
            )
            subjects = sorted(set(target.test_set.meta["subject"].tolist()))[:2]
        self.rows = run_transfer(
            pl_module, target, out_dir, config, self.compare_controls, subjects, logger, progress, self.l2_grid,
            self.balanced,
        )  # fmt: skip
        return self.rows

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.enabled:
            return
        # every rank: log_dir is a collective under DDP, and every rank fine-tunes its share
        out_dir = self.out_dir or trainer.log_dir or trainer.default_root_dir
        # DDP leaves each rank with its own BatchNorm running statistics: evaluate rank 0's encoder
        state = trainer.strategy.broadcast(pl_module.encoder.state_dict(), src=0)
        pl_module.encoder.load_state_dict(state)
        self.run(
            pl_module,
            evaluation_target(trainer.datamodule),
            out_dir,
            trainer.logger if trainer.is_global_zero else None,
            quick=bool(trainer.fast_dev_run),
            progress=trainer.progress_bar_callback is not None,
        )
