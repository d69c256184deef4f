"""Baselines sharing SCMM's encoder, masking, data pipeline and transfer protocol."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..distributed import gather_rows, global_view_rows, world
from ..losses import HardContrastiveLoss
from .base import ContrastivePretrainingTask, MaskedPretrainingTask, PretrainingTask


class HardContrastivePretraining(ContrastivePretrainingTask):
    """SimCLR-style pre-training: NT-Xent between each original and its masked copies (the same
    masking as SCMM), no soft weights, no reconstruction, no aggregator. Under DDP negatives come
    from the gathered global batch (``global_negatives``).

    Args:
        normalize_embeddings: cosine (True, SimCLR) or raw dot-product similarity.

    The projector, temperature, masking, model-shape, encoder and optimiser arguments are those of
    the bases in :mod:`scmm_lightning.tasks.base`.
    """

    def __init__(self, normalize_embeddings: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)

    def configure_losses(self) -> None:
        self.contrastive = HardContrastiveLoss(self.hparams.temperature, self.hparams.normalize_embeddings)

    def compute_losses(
        self,
        x: Tensor,
        generator: torch.Generator | None,
        masked: Tensor | None = None,
        metadata: dict[str, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        if masked is None:
            masked, _ = self.masking(x, generator)
        inputs = torch.cat([x, masked])
        z = self.projector(self.encoder(inputs))
        size = world()[1] if self.hparams.global_negatives else 1
        z_all = gather_rows(z) if size > 1 else z
        sample_index, rows = global_view_rows(inputs.shape[0], x.shape[0], self.hparams.global_negatives, x.device)
        loss = self.contrastive(z, z_all, sample_index, rows)
        return {"loss": loss, "contrastive": loss}


class MaskedReconstructionPretraining(MaskedPretrainingTask):
    """MAE-style pre-training: encode each masked copy and reconstruct its ORIGINAL sample with a
    linear decoder (MSE); no contrastive term, no aggregator. Arguments: those of
    :class:`~scmm_lightning.tasks.base.MaskedPretrainingTask` and
    :class:`~scmm_lightning.tasks.base.PretrainingTask`."""

    def configure_models(self) -> None:
        super().configure_models()
        hp = self.hparams
        self.decoder = nn.Linear(self.encoder.out_features, hp.num_channels * hp.num_bands)

    def compute_losses(
        self,
        x: Tensor,
        generator: torch.Generator | None,
        masked: Tensor | None = None,
        metadata: dict[str, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        if masked is None:
            masked, _ = self.masking(x, generator)
        rebuilt = self.decoder(self.encoder(masked)).view_as(masked)
        target = x.repeat(masked.shape[0] // x.shape[0], 1, 1)
        loss = F.mse_loss(rebuilt.float(), target.float())
        return {"loss": loss, "reconstruction": loss}


class NoPretraining(PretrainingTask):
    """No pre-training: the encoder keeps its random initialisation (the transfer protocol then
    trains it supervised on the target only). Batches are read but nothing is optimised.

    Args:
        num_channels: electrodes (linked from the datamodule).
        num_bands: bands (linked from the datamodule).
        encoder: encoder class taking ``(num_channels, num_bands)`` first (default ``CNNEncoder``).
    """

    def __init__(self, num_channels: int = 62, num_bands: int = 5, encoder=None) -> None:  # noqa: ANN001
        super().__init__(num_channels=num_channels, num_bands=num_bands, encoder=encoder)
        self.automatic_optimization = False

    def on_fit_start(self) -> None:
        pass

    def compute_losses(
        self,
        x: Tensor,
        generator: torch.Generator | None,
        masked: Tensor | None = None,
        metadata: dict[str, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        return {"loss": x.new_zeros(())}

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        return None

    def configure_optimizers(self) -> None:
        return None
