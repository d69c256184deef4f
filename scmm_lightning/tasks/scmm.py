"""SCMM pre-training as a LightningModule."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from jsonargparse.typing import NonNegativeFloat, NonNegativeInt, PositiveFloat
from torch import Tensor, nn

from ..distributed import gather_rows, global_view_rows, world
from ..losses import SoftContrastiveLoss, UncertaintyWeighting
from ..model import SimilarityAggregator, masked_logits, similarity_matrix
from .base import ContrastivePretrainingTask


def recording_times(metadata: dict[str, Tensor] | None, batch: int, gather: bool = False) -> tuple[Tensor, Tensor]:
    """(recording, window) of every sample of the (gathered, with ``gather``) batch: one integer id
    per distinct (subject, session, trial), and the window index, from the batch metadata."""
    needed = ("subject", "session", "trial", "window")
    if metadata is None or any(k not in metadata for k in needed):
        raise ValueError(
            "soft_weights_from='time' needs the batch metadata subject/session/trial/window for every window "
            "(datamodules of this project provide it); got " + (str(sorted(metadata)) if metadata else "none")
        )
    meta = torch.stack([metadata[k].reshape(-1)[:batch].long() for k in needed], dim=1)
    if gather:
        meta = gather_rows(meta, sync_grads=False)
    _, recording = torch.unique(meta[:, :3], dim=0, return_inverse=True)
    return recording, meta[:, 3]


class SCMMPretraining(ContrastivePretrainingTask):
    """Soft Contrastive Masked Modeling pre-training.

    One step on a batch of B originals: ``num_masks`` masked copies per original; the
    N = B (M + 1) rows go through encoder -> h and projector -> z; ``S = z z^T``; the soft
    contrastive loss on ``S`` with input-space soft weights; the aggregator rebuilds each row's h
    from the other rows (softmax of ``S / T``, diagonal excluded) and the linear decoder maps it to
    the ORIGINAL unmasked sample (MSE); both losses are combined with learned uncertainty weights.
    Under DDP with ``global_negatives`` every rank compares its rows with the gathered global batch.

    Args:
        upper_bound: alpha of the soft weights.
        sharpness: tau_s of the soft weights.
        soft_weights: ``False`` gives hard InfoNCE (non-positive pairs weighted 0).
        use_aggregator: ``False`` decodes each row from its own h.
        reconstruction_target: ``original`` (the paper) or ``masked_input`` (the reference's bug,
            kept only for comparison).
        learn_loss_weights: ``False`` fixes both uncertainty scales at 1 (equal weights).
        similarity: ``dot`` (the paper and the reference: ``S = z z^T``) or ``cosine``
            (``S = zn zn^T`` with ``zn = z / |z|``: bounded logits, norms cannot carry the loss), for
            both the contrastive logits and the aggregator.
        soft_weights_from: ``input`` (the paper: input-space similarity, ``upper_bound`` and
            ``sharpness``) or ``time``: windows at most ``time_radius`` apart in the same recording
            (subject, session, trial) weigh ``exp(-time_decay * dt)``, every other pair 0 (see
            :func:`scmm_lightning.losses.time_weights`; uses the batch's metadata, never labels).
        time_radius: ``time``: radius in windows.
        time_decay: ``time``: decay per window of the weight.

    ``temperature`` (T of the contrastive softmax and of the aggregator), the projector, masking,
    model-shape, encoder and optimiser arguments are those of the bases in
    :mod:`scmm_lightning.tasks.base`.
    """

    def __init__(
        self,
        upper_bound: NonNegativeFloat = 0.5,
        sharpness: PositiveFloat = 0.5,
        soft_weights: bool = True,
        use_aggregator: bool = True,
        reconstruction_target: Literal["original", "masked_input"] = "original",
        learn_loss_weights: bool = True,
        similarity: Literal["dot", "cosine"] = "dot",
        soft_weights_from: Literal["input", "time"] = "input",
        time_radius: NonNegativeInt = 15,
        time_decay: NonNegativeFloat = 0.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)

    no_decay_prefixes = ("loss_weighting.",)

    def configure_models(self) -> None:
        super().configure_models()
        hp = self.hparams
        self.aggregator = SimilarityAggregator(hp.temperature)
        self.decoder = nn.Linear(self.encoder.out_features, hp.num_channels * hp.num_bands)

    def configure_losses(self) -> None:
        hp = self.hparams
        self.contrastive = SoftContrastiveLoss(
            hp.temperature,
            hp.upper_bound,
            hp.sharpness,
            hp.soft_weights,
            weights_from=hp.soft_weights_from,
            time_radius=hp.time_radius,
            time_decay=hp.time_decay,
        )
        self.loss_weighting = UncertaintyWeighting(2, 1.0, learn=hp.learn_loss_weights)

    def compute_losses(
        self,
        x: Tensor,
        generator: torch.Generator | None,
        masked: Tensor | None = None,
        metadata: dict[str, Tensor] | None = None,
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
        if hp.similarity == "cosine":
            z = F.normalize(z.to(torch.promote_types(z.dtype, torch.float32)), dim=1)  # float32 at least

        size = world()[1] if hp.global_negatives else 1
        # The decoder is affine and every aggregator row sums to 1, so aggregating decoded rows,
        # A (h W^T + b), equals decoding aggregated ones, (A h) W^T + b, with a narrower product.
        decoded = self.decoder(h)
        if size > 1:
            z_all, decoded_all = gather_rows(z), gather_rows(decoded)
            inputs_all = gather_rows(inputs.detach(), sync_grads=False)
        else:
            z_all, decoded_all, inputs_all = z, decoded, inputs
        sample_index, rows = global_view_rows(n_local, b, hp.global_negatives, x.device)
        time = None
        if hp.soft_weights and hp.soft_weights_from == "time":
            time = recording_times(metadata, b, gather=size > 1)

        similarity = similarity_matrix(z, z_all)
        logits = masked_logits(similarity, hp.temperature, rows)  # shared by loss and aggregator
        contrastive = self.contrastive(similarity, inputs_all, sample_index, rows, logits=logits, time=time)
        rebuilt = self.aggregator(similarity, decoded_all, rows, logits=logits) if hp.use_aggregator else decoded
        reconstruction_x = rebuilt.view_as(inputs)
        target = x.repeat(n_local // b, 1, 1) if hp.reconstruction_target == "original" else inputs
        reconstruction = F.mse_loss(reconstruction_x.float(), target.float())
        total = self.loss_weighting([contrastive, reconstruction])
        return {"loss": total, "contrastive": contrastive, "reconstruction": reconstruction}

    def extra_logs(self) -> dict[str, Tensor]:
        w = self.loss_weighting.weights
        return {"train/weight_contrastive": w[0], "train/weight_reconstruction": w[1]}
