"""Similarity of projected rows and its masked logits, shared by the aggregator and the losses.

``rows`` holds the global index of each owned row (under DDP a rank owns a block of the gathered
batch); ``None`` means every row.
"""

from __future__ import annotations

import torch
from torch import Tensor

# Self-pairs get this logit instead of -inf: exp() of it is exactly 0 in float32, and 0 * it is 0
# (0 * -inf would be NaN), so weighted sums over all columns need no extra masking pass.
SELF_LOGIT = -1.0e30


def row_indices(rows: Tensor | None, n: int, device: torch.device) -> Tensor:
    return torch.arange(n, device=device) if rows is None else rows.to(device)


def similarity_matrix(z_rows: Tensor, z_all: Tensor) -> Tensor:
    """Raw dot-product similarity ``S = z_rows @ z_all^T`` in float32 (as the reference: no norm)."""
    with torch.autocast(device_type=z_all.device.type, enabled=False):
        return z_rows.float() @ z_all.float().T


def masked_logits(similarity: Tensor, temperature: float, rows: Tensor | None = None) -> Tensor:
    """``S / T`` in float32 with every row's self-pair set to :data:`SELF_LOGIT` (excluded)."""
    n, n_all = similarity.shape
    rows = row_indices(rows, n_all, similarity.device)
    with torch.autocast(device_type=similarity.device.type, enabled=False):
        logits = similarity.float() * (1.0 / temperature)
        return logits.index_put((torch.arange(n, device=logits.device), rows), logits.new_tensor(SELF_LOGIT))
