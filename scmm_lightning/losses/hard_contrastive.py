"""Hard (SimCLR-style) contrastive loss over the views of each sample."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..model.similarity import masked_logits
from .soft_contrastive import soft_weights


class HardContrastiveLoss(nn.Module):
    """NT-Xent over all views: for the ``n`` owned rows ``i`` of ``N`` rows with positives ``P(i)``
    (the other views of the same sample)::

        s_ij = cos(z_i, z_j)  (or z_i . z_j with normalize=False)
        L    = 1 / D * sum_i sum_{j in P(i)} -log softmax_{j != i}(s_ij / T)

    ``D`` is the number of positive pairs (``average="positives"``, SimCLR) or ``n (N - 1)``
    (``average="all_pairs"``, SCMM's normalisation; with ``normalize=False`` this equals SCMM's
    contrastive term with soft weighting off). Float32 inside.
    """

    def __init__(
        self, temperature: float = 0.5, normalize: bool = True, average: Literal["positives", "all_pairs"] = "positives"
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if average not in ("positives", "all_pairs"):
            raise ValueError(f"average {average!r} unknown; choose positives or all_pairs")
        self.temperature = temperature
        self.normalize = normalize
        self.average = average

    def forward(self, z_rows: Tensor, z_all: Tensor, sample_index: Tensor, rows: Tensor | None = None) -> Tensor:
        n, n_all = z_rows.shape[0], z_all.shape[0]
        if rows is None:
            rows = torch.arange(n_all, device=z_all.device)
        with torch.autocast(device_type=z_all.device.type, enabled=False):
            a, b = z_rows.float(), z_all.float()
            if self.normalize:
                a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
            log_prob = torch.log_softmax(masked_logits(a @ b.T, self.temperature, rows), dim=1)
            positives = soft_weights(z_all.detach(), sample_index, 0.0, 1.0, rows, soft=False)
            denom = positives.sum() if self.average == "positives" else torch.tensor(float(n * max(n_all - 1, 1)))
            return -(positives * log_prob).sum() / denom.clamp_min(1.0)
