"""Representation diagnostics logged during pre-training and plotted at its end."""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L
import torch

from ..evaluation.diagnostics import alignment, effective_rank, mean_off_diagonal_cosine, uniformity
from ..evaluation.results import atomic_write, png_bytes
from ..tasks.scmm import recording_times


class RepresentationDiagnostics(L.Callback):
    """Every ``every_n_epochs`` epochs, on a fixed sample of ``rows`` source training windows (eval
    mode, one fixed masked copy each): effective rank of h and of z, alignment (original vs masked
    copy) and uniformity of z, mean off-diagonal cosine of h, mean norm of z, and for a method with
    soft weights the mean weight of the non-positive pairs. Logged as ``diag/...``; at the end of fit
    ``diagnostics.png`` (with the probe curve when a :class:`LinearProbe` ran) goes to the log
    directory. Costs a forward pass over ``rows`` windows and an SVD per epoch (its share of the
    epoch is logged as ``diag/seconds``).

    Args:
        every_n_epochs: period.
        rows: windows in the fixed sample.
    """

    def __init__(self, every_n_epochs: int = 1, rows: int = 512) -> None:
        self.every_n_epochs = every_n_epochs
        self.rows = rows
        self.history: list[dict[str, float]] = []
        self._sample: torch.Tensor | None = None
        self._metadata: dict[str, torch.Tensor] = {}

    def sample(self, trainer: L.Trainer) -> torch.Tensor:
        if self._sample is None:
            dm = trainer.datamodule
            source = getattr(dm, "source", dm)
            x = source.train_set.x
            idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[: self.rows].sort().values
            self._sample = x[idx]
            self._metadata = {k: v[idx] for k, v in source.train_set.meta.items() if k != "label"}
        return self._sample

    @torch.no_grad()
    def measure(self, pl_module: L.LightningModule, x: torch.Tensor) -> dict[str, float]:
        was = pl_module.training
        pl_module.eval()
        x = x.to(pl_module.device)
        h = pl_module.encoder(x).float()
        out = {"h_effective_rank": effective_rank(h), "h_mean_cosine": mean_off_diagonal_cosine(h)}
        projector = getattr(pl_module, "projector", None)
        masking = getattr(pl_module, "masking", None)
        masked = (
            masking(x, torch.Generator(device=x.device).manual_seed(0))[0][: len(x)] if masking is not None else None
        )
        if projector is not None:
            z = projector(h).float()
            out.update(
                z_effective_rank=effective_rank(z), z_uniformity=uniformity(z), z_norm=float(z.norm(dim=1).mean())
            )
            if masked is not None:
                out["z_alignment"] = alignment(z, projector(pl_module.encoder(masked)).float())
        contrastive = getattr(pl_module, "contrastive", None)
        by_time = getattr(contrastive, "weights_from", "input") == "time"
        fits = len(self._metadata.get("window", ())) == len(x)
        if contrastive is not None and hasattr(contrastive, "weights") and masked is not None and (fits or not by_time):
            inputs = torch.cat([x, masked])
            sample_index = torch.arange(len(x), device=x.device).repeat(2)
            time = recording_times({k: v.to(x.device) for k, v in self._metadata.items()}, len(x)) if by_time else None
            w = contrastive.weights(inputs, sample_index, time=time)
            negative = sample_index[:, None] != sample_index[None, :]
            out["soft_weight_negative_mean"] = float(w[negative].mean())
        pl_module.train(was)
        return out

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        if epoch % self.every_n_epochs and not (trainer.max_epochs and epoch >= trainer.max_epochs):
            return
        t0 = time.perf_counter()
        values = self.measure(pl_module, self.sample(trainer))
        values["seconds"] = time.perf_counter() - t0
        self.history.append({"epoch": epoch, **values})
        pl_module.log_dict(
            {f"diag/{k}": v for k, v in values.items()}, on_step=False, on_epoch=True, rank_zero_only=True
        )

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        log_dir = trainer.log_dir  # a collective under DDP: read on every rank
        if not trainer.is_global_zero or not self.history or log_dir is None:
            return
        probe = next((c for c in trainer.callbacks if type(c).__name__ == "LinearProbe"), None)
        atomic_write(Path(log_dir) / "diagnostics.png", self.figure(getattr(probe, "history", [])))

    def figure(self, probe_history: list[dict]) -> bytes:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        keys = [k for k in self.history[0] if k not in ("epoch", "seconds")]
        panels = keys + (["probe"] if probe_history else [])
        cols = 4
        fig, axes = plt.subplots(-(-len(panels) // cols), cols, figsize=(4 * cols, 3 * -(-len(panels) // cols)))
        axes = axes.ravel() if hasattr(axes, "ravel") else [axes]
        epochs = [h["epoch"] for h in self.history]
        for ax, key in zip(axes, panels):
            if key == "probe":
                ax.plot([h["epoch"] for h in probe_history], [h.get("probe/bacc_mean") for h in probe_history], "o-")
                ax.set_title("probe balanced accuracy (test)")
            else:
                ax.plot(epochs, [h[key] for h in self.history], "o-", markersize=3)
                ax.set_title(key)
            ax.set_xlabel("epoch")
        for ax in list(axes)[len(panels) :]:
            ax.axis("off")
        return png_bytes(fig, dpi=90)
