"""Similarity aggregator of SCMM."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .similarity import masked_logits


class SimilarityAggregator(nn.Module):
    """Rebuild every row from the OTHER rows, weighted by similarity::

        A_ij  = exp(S_ij / T) / sum_{k != i} exp(S_ik / T),   A_ii = 0
        h^r_i = sum_j A_ij v_j

    ``similarity`` is (n, N) for the owned rows (global indices ``rows``) against all rows;
    ``values`` is (N, D). The softmax runs in float32; ``logits`` (from
    :func:`~scmm_lightning.model.similarity.masked_logits`) may be passed to share them
    with the contrastive loss.
    """

    def __init__(self, temperature: float = 0.5) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"aggregator temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def attention(self, similarity: Tensor, rows: Tensor | None = None, logits: Tensor | None = None) -> Tensor:
        if logits is None:
            logits = masked_logits(similarity, self.temperature, rows)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            return torch.softmax(logits, dim=1)

    def forward(
        self, similarity: Tensor, values: Tensor, rows: Tensor | None = None, logits: Tensor | None = None
    ) -> Tensor:
        attn = self.attention(similarity, rows, logits)
        return attn.to(values.dtype) @ values
