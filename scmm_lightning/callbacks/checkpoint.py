"""Checkpoints a killed run can resume from, never half-written."""

from __future__ import annotations

import os
from pathlib import Path
from weakref import proxy

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


class RunCheckpoint(ModelCheckpoint):
    """:class:`~lightning.pytorch.callbacks.ModelCheckpoint` that (1) writes ``last.ckpt`` at the
    end of every ``every_n_epochs``-th epoch even with ``save_top_k: 0`` (Lightning's own writes it
    only when a top-k checkpoint was saved in the same step, i.e. at the end of fit), and (2) writes
    every checkpoint to a temporary file in the target directory and renames it into place, so a
    crash or a full disk leaves the previous checkpoint whole and never a truncated one under the
    real name. Arguments: those of ``ModelCheckpoint``."""

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if (
            self.save_last
            and not self._should_skip_saving_checkpoint(trainer)
            and self._every_n_epochs >= 1
            and (trainer.current_epoch + 1) % self._every_n_epochs == 0
            and self._last_global_step_saved != trainer.global_step
        ):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        path = Path(filepath)
        tmp = path.with_name(f".{path.name}.partial")
        try:
            trainer.save_checkpoint(tmp, self.save_weights_only)  # every rank: it holds a barrier
            if trainer.is_global_zero:
                os.replace(tmp, path)
        except BaseException:
            if trainer.is_global_zero:
                tmp.unlink(missing_ok=True)
            raise
        trainer.strategy.barrier("RunCheckpoint.rename")
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))
