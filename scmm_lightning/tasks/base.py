"""What every pre-training method shares: encoder construction, per-step mask seeds, logging,
optimiser and schedule. Methods implement ``configure_models`` and ``compute_losses``."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn

from ..model import CNNEncoder

EncoderFactory = Callable[[int, int], nn.Module]


def step_seed(*parts: int) -> int:
    """A 63-bit seed derived from integers (base seed, rank, epoch, batch) without collisions in
    practice; used to reseed the mask generator every step so masks never depend on history."""
    state = np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def make_adam(groups: list[dict[str, Any]], lr: float, betas: tuple[float, float]) -> torch.optim.Optimizer:
    """Adam, fused into one kernel where this torch supports it for the parameters' device (same
    update rule; on the CPU it saves about a millisecond per step at the paper's model size)."""
    params = [p for g in groups for p in g["params"]]
    if params and all(p.device.type in ("cpu", "cuda") and p.dtype == torch.float32 for p in params):
        try:
            return torch.optim.Adam(groups, lr=lr, betas=betas, fused=True)
        except (RuntimeError, TypeError):  # older torch: no fused Adam on this device
            pass
    return torch.optim.Adam(groups, lr=lr, betas=betas)


class PretrainingTask(L.LightningModule):
    """Base of the pre-training LightningModules.

    Subclasses call ``save_hyperparameters(ignore=["encoder"])`` with at least ``num_channels``,
    ``num_bands``, ``lr``, ``betas``, ``weight_decay``, ``cosine_epochs``, ``min_lr`` and
    ``flush_denormal``, then :meth:`configure_models`; they return a dict of losses (key ``loss``
    is optimised) from :meth:`compute_losses`.
    """

    #: parameter-name prefixes excluded from weight decay
    no_decay_prefixes: tuple[str, ...] = ()

    def __init__(self, encoder: EncoderFactory | None = None) -> None:
        super().__init__()
        self.encoder_factory = encoder
        self._mask_generator: torch.Generator | None = None

    def build_encoder(self) -> nn.Module:
        """A new encoder of the configured architecture (also the random-init control)."""
        factory = self.encoder_factory or CNNEncoder
        encoder = factory(self.hparams.num_channels, self.hparams.num_bands)
        if not isinstance(getattr(encoder, "out_features", None), int):
            raise TypeError(f"encoder {type(encoder).__name__} must expose an integer `out_features`")
        return encoder

    def forward(self, x: Tensor) -> Tensor:
        """Encoder representation h of samples (B, C, F)."""
        return self.encoder(x)

    def compute_losses(
        self, x: Tensor, generator: torch.Generator | None, masked: Tensor | None = None
    ) -> dict[str, Tensor]:
        raise NotImplementedError

    def mask_generator(self, device: torch.device, batch_idx: int, epoch: int | None = None) -> torch.Generator:
        """Generator reseeded from (seed, rank, epoch, batch): reproducible, different per rank,
        and independent of what ran before, so a resumed run draws the same masks."""
        if self._mask_generator is None or self._mask_generator.device != device:
            self._mask_generator = torch.Generator(device=device)
        base = int(os.environ.get("PL_GLOBAL_SEED", 0))
        epoch = self.current_epoch if epoch is None else epoch
        self._mask_generator.manual_seed(step_seed(base, self.global_rank, epoch, batch_idx))
        return self._mask_generator

    def extra_logs(self) -> dict[str, Tensor]:
        """Epoch-level values to log besides the losses (e.g. learned loss weights)."""
        return {}

    # -- Lightning hooks -------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        if self.hparams.flush_denormal:
            torch.set_flush_denormal(True)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        x = batch["x"]
        losses = self.compute_losses(x, self.mask_generator(x.device, batch_idx))
        sync = self.trainer.world_size > 1
        self.log_dict(
            {f"train/{k}": v.detach() for k, v in losses.items()},
            on_step=True,
            on_epoch=True,
            batch_size=x.shape[0],
            sync_dist=sync,
        )
        self.log("loss", losses["loss"].detach(), prog_bar=True, logger=False, batch_size=x.shape[0])
        extra = self.extra_logs()
        if extra:
            self.log_dict(extra, on_step=False, on_epoch=True, batch_size=x.shape[0], sync_dist=sync)
        return losses["loss"]

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        skip = (
            [p for n, p in self.named_parameters() if n.startswith(self.no_decay_prefixes)]
            if self.no_decay_prefixes
            else []
        )
        skip_ids = {id(p) for p in skip}
        groups = [{"params": [p for p in self.parameters() if id(p) not in skip_ids], "weight_decay": hp.weight_decay}]
        if skip:
            groups.append({"params": skip, "weight_decay": 0.0})
        optimizer = make_adam(groups, hp.lr, tuple(hp.betas))
        max_epochs = self._trainer.max_epochs if self._trainer is not None else None
        period = hp.cosine_epochs or (max_epochs if max_epochs and max_epochs > 0 else 1)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=period, eta_min=hp.min_lr)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
