"""Baselines sharing SCMM's encoder, masking, data pipeline and transfer protocol."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..distributed import gather_rows, world
from ..losses import HardContrastiveLoss
from ..model import HybridMasking, Projector
from ..model.masking import MaskMode
from .base import EncoderFactory, PretrainingTask


class HardContrastivePretraining(PretrainingTask):
    """SimCLR-style pre-training: NT-Xent between each original and its masked copies (the same
    masking as SCMM), cosine similarity, no soft weights, no reconstruction, no aggregator. Under
    DDP negatives come from the gathered global batch (``global_negatives``).

    Args:
        num_channels: electrodes (linked from the datamodule).
        num_bands: bands (linked from the datamodule).
        encoder: encoder class taking ``(num_channels, num_bands)`` first (default ``CNNEncoder``).
        projection_hidden: projector hidden width.
        projection_dim: projector output width.
        mask_mode: random, channel, hybrid or parallel.
        mask_ratio: masked fraction.
        mask_threshold: hybrid/parallel probability of the channel mask.
        mask_num: masked copies per sample.
        temperature: NT-Xent temperature.
        normalize_embeddings: cosine (True, SimCLR) or raw dot-product similarity.
        global_negatives: gather rows from every DDP rank.
        lr: Adam learning rate.
        betas: Adam betas.
        weight_decay: Adam weight decay.
        cosine_epochs: cosine period (default ``trainer.max_epochs``).
        min_lr: final learning rate.
        flush_denormal: flush float32 denormals on the CPU during fit.
    """

    def __init__(
        self,
        num_channels: int = 62,
        num_bands: int = 5,
        encoder: EncoderFactory | None = None,
        projection_hidden: int = 256,
        projection_dim: int = 128,
        mask_mode: MaskMode = "hybrid",
        mask_ratio: float = 0.5,
        mask_threshold: float = 0.1,
        mask_num: int | None = 1,
        temperature: float = 0.5,
        normalize_embeddings: bool = True,
        global_negatives: bool = True,
        lr: float = 5e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 3e-4,
        cosine_epochs: int | None = None,
        min_lr: float = 0.0,
        flush_denormal: bool = True,
    ) -> None:
        super().__init__(encoder)
        self.save_hyperparameters(ignore=["encoder"])
        self.configure_models()

    def configure_models(self) -> None:
        hp = self.hparams
        self.encoder = self.build_encoder()
        self.projector = Projector(self.encoder.out_features, hp.projection_hidden, hp.projection_dim)
        self.masking = HybridMasking(hp.mask_mode, hp.mask_ratio, hp.mask_threshold, hp.mask_num)
        self.contrastive = HardContrastiveLoss(hp.temperature, hp.normalize_embeddings)

    def compute_losses(
        self, x: Tensor, generator: torch.Generator | None, masked: Tensor | None = None
    ) -> dict[str, Tensor]:
        b = x.shape[0]
        if masked is None:
            masked, _ = self.masking(x, generator)
        inputs = torch.cat([x, masked])
        n_local = inputs.shape[0]
        z = self.projector(self.encoder(inputs))
        rank, size = world() if self.hparams.global_negatives else (0, 1)
        z_all = gather_rows(z) if size > 1 else z
        glob = torch.arange(size * n_local, device=x.device)
        sample_index = (glob // n_local) * b + (glob % n_local) % b
        rows = rank * n_local + torch.arange(n_local, device=x.device)
        loss = self.contrastive(z, z_all, sample_index, rows)
        return {"loss": loss, "contrastive": loss}


class MaskedReconstructionPretraining(PretrainingTask):
    """MAE-style pre-training: encode each masked copy and reconstruct its ORIGINAL sample with a
    linear decoder (MSE); no contrastive term, no aggregator.

    Args:
        num_channels: electrodes (linked from the datamodule).
        num_bands: bands (linked from the datamodule).
        encoder: encoder class taking ``(num_channels, num_bands)`` first (default ``CNNEncoder``).
        mask_mode: random, channel, hybrid or parallel.
        mask_ratio: masked fraction.
        mask_threshold: hybrid/parallel probability of the channel mask.
        mask_num: masked copies per sample.
        lr: Adam learning rate.
        betas: Adam betas.
        weight_decay: Adam weight decay.
        cosine_epochs: cosine period (default ``trainer.max_epochs``).
        min_lr: final learning rate.
        flush_denormal: flush float32 denormals on the CPU during fit.
    """

    def __init__(
        self,
        num_channels: int = 62,
        num_bands: int = 5,
        encoder: EncoderFactory | None = None,
        mask_mode: MaskMode = "hybrid",
        mask_ratio: float = 0.5,
        mask_threshold: float = 0.1,
        mask_num: int | None = 1,
        lr: float = 5e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 3e-4,
        cosine_epochs: int | None = None,
        min_lr: float = 0.0,
        flush_denormal: bool = True,
    ) -> None:
        super().__init__(encoder)
        self.save_hyperparameters(ignore=["encoder"])
        self.configure_models()

    def configure_models(self) -> None:
        hp = self.hparams
        self.encoder = self.build_encoder()
        self.masking = HybridMasking(hp.mask_mode, hp.mask_ratio, hp.mask_threshold, hp.mask_num)
        self.decoder = nn.Linear(self.encoder.out_features, hp.num_channels * hp.num_bands)

    def compute_losses(
        self, x: Tensor, generator: torch.Generator | None, masked: Tensor | None = None
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

    def __init__(self, num_channels: int = 62, num_bands: int = 5, encoder: EncoderFactory | None = None) -> None:
        super().__init__(encoder)
        self.save_hyperparameters(ignore=["encoder"])
        self.automatic_optimization = False
        self.encoder = self.build_encoder()

    def on_fit_start(self) -> None:
        pass

    def compute_losses(
        self, x: Tensor, generator: torch.Generator | None, masked: Tensor | None = None
    ) -> dict[str, Tensor]:
        return {"loss": x.new_zeros(())}

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        return None

    def configure_optimizers(self) -> None:
        return None
