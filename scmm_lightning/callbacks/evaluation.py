"""Target-corpus evaluation during and after pre-training."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import nn

from ..evaluation import (
    FinetuneConfig,
    console_table,
    finetune_protocol,
    linear_probe,
    rows_from,
    summary,
    write_results,
)
from ..evaluation.protocol import subject_seed


def evaluation_target(datamodule: L.LightningDataModule | None):
    """The corpus to evaluate on: a CrossCorpusDataModule's target, else the datamodule itself
    when its split has a test part."""
    target = getattr(datamodule, "target", datamodule)
    if target is None or getattr(target, "test_set", None) is None:
        raise ValueError(
            "target-corpus evaluation needs a datamodule with a test split: use "
            "scmm_lightning.data.CrossCorpusDataModule (target with split.kind trial/loso/cross_session/leave_subjects_out) or set "
            "data split.kind on a single corpus"
        )
    return target


def random_encoder(pl_module: L.LightningModule, seed: int) -> nn.Module:
    """A freshly initialised encoder of the module's architecture (the random-init control)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = pl_module.build_encoder()
    return encoder.to(pl_module.device)


def base_seed() -> int:
    return int(os.environ.get("PL_GLOBAL_SEED", 0))


class LinearProbe(L.Callback):
    """Every ``every_n_epochs`` epochs (and after the last), embed the target corpus with the frozen
    encoder, fit a logistic-regression probe per target subject on its training trials and log test
    accuracy and macro-F1 (``probe/acc_mean``, ``probe/f1_mean``, per subject with
    ``log_per_subject``). With ``compare_random_init`` the same probe on a randomly initialised
    encoder is logged once as ``probe/random_init_acc_mean``.

    Args:
        every_n_epochs: probing period.
        l2: L2 penalty of the probe.
        compare_random_init: also probe a randomly initialised encoder (the control).
        log_per_subject: log ``probe/acc_subject{S}`` too.
        balanced: weight classes inversely to their frequency in the probe's loss (unbalanced classes).

    On a cross-subject split (no subject on both sides) one probe is fitted on every training
    subject and scored per test subject. ``probe/bacc_mean`` is the mean balanced accuracy.
    """

    def __init__(
        self,
        every_n_epochs: int = 5,
        l2: float = 1e-3,
        compare_random_init: bool = True,
        log_per_subject: bool = True,
        balanced: bool = False,
    ) -> None:
        self.every_n_epochs = every_n_epochs
        self.l2 = l2
        self.balanced = balanced
        self.compare_random_init = compare_random_init
        self.log_per_subject = log_per_subject
        self.random_init: dict[str, float] | None = None
        self.history: list[dict[str, float]] = []

    def probe(self, encoder: nn.Module, target) -> dict[str, float]:
        res = linear_probe(encoder, target.train_set, target.test_set, target.num_classes, self.l2, self.balanced)
        out = {
            "acc_mean": float(np.mean([r["accuracy"] for r in res.values()])),
            "bacc_mean": float(np.mean([r["balanced_accuracy"] for r in res.values()])),
            "f1_mean": float(np.mean([r["macro_f1"] for r in res.values()])),
        }
        if self.log_per_subject:
            out.update({f"acc_subject{s}": r["accuracy"] for s, r in res.items()})
        return out

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        last = trainer.max_epochs is not None and epoch >= trainer.max_epochs
        if not (epoch % self.every_n_epochs == 0 or last or trainer.fast_dev_run):
            return
        target = evaluation_target(trainer.datamodule)
        metrics = {f"probe/{k}": v for k, v in self.probe(pl_module.encoder, target).items()}
        if self.compare_random_init:
            if self.random_init is None:
                self.random_init = self.probe(random_encoder(pl_module, base_seed() + 1), target)
            metrics["probe/random_init_acc_mean"] = self.random_init["acc_mean"]
            metrics["probe/random_init_f1_mean"] = self.random_init["f1_mean"]
        self.history.append({"epoch": epoch, **metrics})
        pl_module.log_dict(metrics, on_step=False, on_epoch=True, rank_zero_only=True)


class CrossCorpusTransfer(L.Callback):
    """At the end of ``fit``: per target subject, fine-tune the pre-trained encoder with a fresh head
    on its fine-tuning trials, choose the epoch on the last ``finetune.val_trials`` of them, and test
    on its test trials; likewise from a randomly initialised encoder with ``compare_random_init``.
    Writes ``transfer_results.{csv,md,png}`` and ``transfer_results_summary.json`` into the run
    directory, logs the means to the active logger and prints the table.

    Args:
        finetune: fine-tuning settings.
        compare_random_init: also run the protocol from a randomly initialised encoder (the control).
        subjects: target subjects to evaluate (default all).
        out_dir: where result files go (default: the trainer's log directory).
    """

    def __init__(
        self,
        finetune: FinetuneConfig | None = None,
        compare_random_init: bool = True,
        subjects: list[int] | None = None,
        out_dir: str | None = None,
    ) -> None:
        self.finetune = finetune or FinetuneConfig()
        self.compare_random_init = compare_random_init
        self.subjects = subjects
        self.out_dir = out_dir
        self.rows: list[dict] = []

    def run(
        self, pl_module: L.LightningModule, target, out_dir: str | Path, logger=None, quick: bool = False
    ) -> list[dict]:
        config, subjects = self.finetune, self.subjects
        if quick:  # fast_dev_run: one epoch, two subjects, just to exercise the code
            config = FinetuneConfig(**{**vars(config), "epochs": 1})
            subjects = sorted(set(target.test_set.meta["subject"].tolist()))[:2]
        seed = base_seed()
        encoders = {"pretrained": pl_module.encoder}
        if self.compare_random_init:
            encoders["random_init"] = random_encoder(pl_module, seed + 1)
        results = {
            name: finetune_protocol(
                enc, target.train_set, target.test_set, target.num_classes, config, subject_seed(seed, 0, k), subjects
            )
            for k, (name, enc) in enumerate(encoders.items())
        }
        self.rows = rows_from(results)
        confusion = sum(r["confusion"] for r in results["pretrained"].values())
        title = f"{getattr(target, 'corpus_name', 'target')} transfer"
        paths = write_results(out_dir, self.rows, confusion, list(target.class_names), title)
        stats = summary(self.rows)
        if logger is not None:
            flat = {
                f"transfer/{m}/{k}_{p}": v[i]
                for m, s in stats.items()
                for k, v in s.items()
                for i, p in enumerate(("mean", "std"))
            }
            logger.log_metrics(flat)
            if hasattr(logger, "log_table"):
                cols = list(self.rows[0])
                logger.log_table(key="transfer/results", columns=cols, data=[[r[c] for c in cols] for r in self.rows])
            if hasattr(logger, "log_image"):
                logger.log_image(key="transfer/figure", images=[str(paths["png"])])
        print("\n" + console_table(self.rows, title) + f"\nresults: {paths['md']}", flush=True)
        return self.rows

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        out_dir = self.out_dir or trainer.log_dir or trainer.default_root_dir
        self.run(
            pl_module, evaluation_target(trainer.datamodule), out_dir, trainer.logger, quick=bool(trainer.fast_dev_run)
        )
