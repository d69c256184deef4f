"""SCMM pre-training as a LightningModule."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..distributed import gather_rows, world
from ..losses import SoftContrastiveLoss, UncertaintyWeighting, similarity_matrix
from ..losses.soft_contrastive import masked_logits
from ..model import HybridMasking, Projector, SimilarityAggregator
from ..model.masking import MaskMode
from .base import EncoderFactory, PretrainingTask, make_adam, step_seed  # noqa: F401 (re-exported)


class SCMMPretraining(PretrainingTask):
    """Soft Contrastive Masked Modeling pre-training.

    One step on a batch of B originals: ``num_masks`` masked copies per original; the
    N = B (M + 1) rows go through encoder -> h and projector -> z; ``S = z z^T``; the soft
    contrastive loss on ``S`` with input-space soft weights; the aggregator rebuilds each row's h
    from the other rows (softmax of ``S / T``, diagonal excluded) and the linear decoder maps it to
    the ORIGINAL unmasked sample (MSE); both losses are combined with learned uncertainty weights.
    Under DDP with ``global_negatives`` every rank compares its rows with the gathered global batch.

    Args:
        num_channels: electrodes C (linked from the datamodule by the CLI).
        num_bands: frequency bands F (linked from the datamodule by the CLI).
        encoder: class taking ``(num_channels, num_bands)`` first, e.g. ``CNNEncoder`` (default).
        projection_hidden: hidden width of the projector.
        projection_dim: output width of the projector (z).
        mask_mode: ``random``, ``channel``, ``hybrid`` or ``parallel``.
        mask_ratio: fraction of entries / channels masked.
        mask_threshold: hybrid/parallel: probability of using the channel mask.
        mask_num: masked copies per sample; ``None`` means ``ceil(1.5 / (1 - mask_ratio))``.
        temperature: T of the contrastive softmax and the aggregator.
        upper_bound: alpha of the soft weights.
        sharpness: tau_s of the soft weights.
        soft_weights: ``False`` gives hard InfoNCE (non-positive pairs weighted 0).
        use_aggregator: ``False`` decodes each row from its own h.
        reconstruction_target: ``original`` (the paper) or ``masked_input`` (the reference's bug,
            kept only for comparison).
        learn_loss_weights: ``False`` fixes both uncertainty scales at 1 (equal weights).
        global_negatives: under DDP, gather rows from every rank (``False``: per-rank batches).
        lr: Adam learning rate.
        betas: Adam betas.
        weight_decay: Adam weight decay (not applied to the loss-weight scales).
        cosine_epochs: cosine annealing period in epochs; ``None`` uses ``trainer.max_epochs``.
        min_lr: learning rate at the end of the cosine period.
        flush_denormal: during fit, flush float32 denormals to zero on the CPU. The softmaxes over
            ``S / T`` produce many values near exp(-100); denormal arithmetic on them is tens of
            times slower (measured: aggregator step 58 ms -> 3.7 ms at N = 512) and changes no
            result beyond 1e-38.
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
        upper_bound: float = 0.5,
        sharpness: float = 0.5,
        soft_weights: bool = True,
        use_aggregator: bool = True,
        reconstruction_target: Literal["original", "masked_input"] = "original",
        learn_loss_weights: bool = True,
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
        self.configure_losses()

    no_decay_prefixes = ("loss_weighting.",)

    def configure_models(self) -> None:
        hp = self.hparams
        self.encoder = self.build_encoder()
        out = self.encoder.out_features
        self.projector = Projector(out, hp.projection_hidden, hp.projection_dim)
        self.masking = HybridMasking(hp.mask_mode, hp.mask_ratio, hp.mask_threshold, hp.mask_num)
        self.aggregator = SimilarityAggregator(hp.temperature)
        self.decoder = nn.Linear(out, hp.num_channels * hp.num_bands)

    def configure_losses(self) -> None:
        hp = self.hparams
        self.contrastive = SoftContrastiveLoss(hp.temperature, hp.upper_bound, hp.sharpness, hp.soft_weights)
        self.loss_weighting = UncertaintyWeighting(2, 1.0, learn=hp.learn_loss_weights)

    def compute_losses(
        self, x: Tensor, generator: torch.Generator | None, masked: Tensor | None = None
    ) -> dict[str, Tensor]:
        """All SCMM losses for a batch of originals ``x`` (B, C, F); ``masked`` (M B, C, F, copy-major)
        replaces the drawn masked copies when given (tests compare runs on identical masks)."""
        hp = self.hparams
        b = x.shape[0]
        if masked is None:
            masked, _ = self.masking(x, generator)
        inputs = torch.cat([x, masked])
        n_local = inputs.shape[0]
        h = self.encoder(inputs)
        z = self.projector(h)

        rank, size = world() if hp.global_negatives else (0, 1)
        # The decoder is affine and every aggregator row sums to 1, so aggregating decoded rows,
        # A (h W^T + b), equals decoding aggregated ones, (A h) W^T + b, with a narrower product.
        decoded = self.decoder(h)
        if size > 1:
            z_all, decoded_all = gather_rows(z), gather_rows(decoded)
            inputs_all = gather_rows(inputs.detach(), sync_grads=False)
        else:
            z_all, decoded_all, inputs_all = z, decoded, inputs
        # Rank q owns global rows q*n_local ... ; row r there is a view of global sample q*b + r % b.
        global_rows = torch.arange(size * n_local, device=x.device)
        sample_index = (global_rows // n_local) * b + (global_rows % n_local) % b
        rows = rank * n_local + torch.arange(n_local, device=x.device)

        similarity = similarity_matrix(z, z_all)
        logits = masked_logits(similarity, hp.temperature, rows)  # shared by loss and aggregator
        contrastive = self.contrastive(similarity, inputs_all, sample_index, rows, logits=logits)
        rebuilt = self.aggregator(similarity, decoded_all, rows, logits=logits) if hp.use_aggregator else decoded
        reconstruction_x = rebuilt.view_as(inputs)
        target = x.repeat(n_local // b, 1, 1) if hp.reconstruction_target == "original" else inputs
        reconstruction = F.mse_loss(reconstruction_x.float(), target.float())
        total = self.loss_weighting([contrastive, reconstruction])
        return {"loss": total, "contrastive": contrastive, "reconstruction": reconstruction}

    def extra_logs(self) -> dict[str, Tensor]:
        w = self.loss_weighting.weights
        return {"train/weight_contrastive": w[0], "train/weight_reconstruction": w[1]}
