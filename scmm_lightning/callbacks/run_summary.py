"""Tell the user where a run's logs and checkpoints went."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.utilities import rank_zero_info


class RunSummary(L.Callback):
    """Print the log directory, the last checkpoint and the final logged losses at the end of fit."""

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        log_dir = trainer.log_dir  # a collective under DDP: read on every rank
        if not trainer.is_global_zero:
            return
        lines = ["", "run finished"]
        lines.append(f"  logs:       {log_dir}")
        ckpt = trainer.checkpoint_callback
        if ckpt is not None:
            path = getattr(ckpt, "last_model_path", "") or getattr(ckpt, "best_model_path", "")
            lines.append(f"  checkpoint: {path or '(none written)'}")
        metrics = {
            k: float(v)
            for k, v in trainer.callback_metrics.items()
            if k.endswith("_epoch") or (k.startswith("probe/") and "subject" not in k)
        }
        for key in sorted(metrics):
            lines.append(f"  {key}: {metrics[key]:.4f}")
        print("\n".join(lines), flush=True)
        rank_zero_info("")
