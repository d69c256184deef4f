"""Soft contrastive loss of SCMM and the input-space soft weights it uses.

All pairwise quantities are computed for a block of *rows* (the rows this process owns) against
*all* rows of the (possibly gathered, global) batch, so the same code serves one process and DDP.
``rows`` holds the global index of each owned row; ``None`` means every row. The similarity
matrix and its masked logits (:mod:`scmm_lightning.model.similarity`) are shared with the aggregator.

The N x N work is written to touch each matrix as few times as possible (in-place where no
gradient is needed, index scatters instead of N x N boolean masks): on the CPU these elementwise
passes, not the matrix products, are what separate a step from its floor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..model.similarity import masked_logits, row_indices


def positive_columns(sample_index: Tensor, rows: Tensor) -> Tensor | None:
    """(len(rows), V) global indices of all V views (self included) of each row's sample, or
    ``None`` when samples have unequal numbers of views."""
    counts = torch.bincount(sample_index)
    counts = counts[counts > 0]
    views = int(counts[0])
    if not bool((counts == views).all()):
        return None
    order = torch.argsort(sample_index, stable=True)
    position = torch.empty_like(order)
    position[order] = torch.arange(order.numel(), device=order.device)
    groups = order.view(-1, views)
    return groups[position[rows] // views]


@torch.no_grad()
def soft_weights(
    inputs: Tensor,
    sample_index: Tensor,
    upper_bound: float,
    sharpness: float,
    rows: Tensor | None = None,
    soft: bool = True,
) -> Tensor:
    """Pair weights ``w_ij`` for the rows ``rows`` against all ``N`` rows.

    With ``x`` the flattened model inputs (masked rows keep their masked input)::

        D_ij    = -cos(x_i, x_j)
        D_ii   <- min_{k != l} D_kl                  (one scalar for the whole batch)
        Dhat_ij = (D_ij - min_k D_kj) / (max_k D_kj - min_k D_kj)   (per column; range 0 -> 1)
        w_ij    = 2 * alpha / (1 + exp(Dhat_ij / tau_s))  = 2 * alpha * sigmoid(-Dhat_ij / tau_s)
        w_ij    = 1 where j is another view of the same sample (a positive)
        w_ii    = 0

    ``alpha = upper_bound``, ``tau_s = sharpness``. With ``soft=False`` every non-positive weight is
    0 (plain InfoNCE). Returns float32 (len(rows), N).
    """
    n_all = inputs.shape[0]
    rows = row_indices(rows, n_all, inputs.device)
    n = rows.numel()
    arange = torch.arange(n, device=inputs.device)
    with torch.autocast(device_type=inputs.device.type, enabled=False):
        if soft:
            x = F.normalize(inputs.reshape(n_all, -1).float(), dim=1, eps=1e-12)
            # Column statistics need every row, so the full N x N cosine is formed. In cosine
            # terms (D = -cos): the replaced diagonal is the largest off-diagonal cosine m, which
            # is then every column's maximum, and Dhat_ij = (m - cos_ij) / (m - min_{k!=j} cos_kj).
            cos = x @ x.T
            diag = cos.diagonal()
            if n_all > 1:
                diag.copy_(
                    cos[torch.roll(torch.arange(n_all, device=cos.device), 1), torch.arange(n_all, device=cos.device)]
                )
            col_min, col_max = cos.amin(dim=0), cos.amax(dim=0)  # faster than aminmax on CPU
            top = col_max.max()
            col_range = top - col_min
            col_range = torch.where(col_range > 0, col_range, torch.ones_like(col_range))
            weights = cos if n == n_all and torch.equal(rows, arange) else cos[rows]
            # -Dhat / tau_s = (cos - m) / (range * tau_s); then 2 alpha sigmoid(.)
            weights.sub_(top).mul_(1.0 / (col_range * sharpness)).sigmoid_().mul_(2.0 * upper_bound)
        else:
            weights = torch.zeros(n, n_all, device=inputs.device)
    positives = positive_columns(sample_index, rows)
    if positives is None:
        same = sample_index[rows][:, None] == sample_index[None, :]
        weights = weights.masked_fill(same, 1.0)
    else:
        weights.scatter_(1, positives, 1.0)
    weights[arange, rows] = 0.0
    return weights


@torch.no_grad()
def time_weights(
    recording: Tensor,
    window: Tensor,
    sample_index: Tensor,
    radius: int,
    decay: float = 0.0,
    rows: Tensor | None = None,
) -> Tensor:
    """Pair weights from time instead of input similarity, for the rows ``rows`` against all ``N``.

    ``recording`` and ``window`` (S,) give each SAMPLE's recording (one id per subject, session and
    trial) and window index in it; ``sample_index`` (N,) maps rows to samples. With
    ``dt_ij = |window_i - window_j|``::

        w_ij = exp(-decay * dt_ij)   if recording_i == recording_j and dt_ij <= radius
        w_ij = 0                     otherwise (another recording, or further apart in time)
        w_ij = 1 where j is another view of the same sample (a positive)
        w_ii = 0

    The prior is that EEG state changes slowly: windows a few seconds apart in one recording are
    treated as (softly) the same, everything else as a negative. It uses no label, but it is only
    as good as that prior: where each recording holds one condition (eegmat, SEED's film trials) it
    matches the label structure. Returns float32 (len(rows), N).
    """
    n_all = sample_index.shape[0]
    rows = row_indices(rows, n_all, sample_index.device)
    rec, win = recording[sample_index], window[sample_index].float()
    dt = (win[rows][:, None] - win[None, :]).abs()
    near = (rec[rows][:, None] == rec[None, :]) & (dt <= radius)
    weights = torch.where(near, torch.exp(dt.mul_(-decay)), torch.zeros_like(dt))
    weights = weights.masked_fill(sample_index[rows][:, None] == sample_index[None, :], 1.0)
    weights[torch.arange(rows.numel(), device=rows.device), rows] = 0.0
    return weights


class SoftContrastiveLoss(nn.Module):
    """Soft InfoNCE of SCMM.

    For the ``n`` owned rows ``i`` of a batch of ``N`` rows with similarity ``S`` (``n x N``)::

        L = 1 / (n (N - 1)) * sum_i sum_{j != i} w_ij * ( -log softmax_{j != i}(S_ij / T) )

    with ``w_ij`` from :func:`soft_weights` (``weights_from="input"``, the paper) or
    :func:`time_weights` (``weights_from="time"``; needs each sample's recording and window,
    passed as ``time``). With every row owned this is the method's loss
    divided by ``N (N - 1)``; across DDP ranks the mean of the per-rank values is the global loss.
    Computed as ``-sum_ij w_ij log_softmax(logits)_ij`` with the self-pair's logit at
    :data:`SELF_LOGIT` (so ``w_ii log p_ii = 0``), all in float32.

    Args:
        temperature: ``T``.
        upper_bound: ``alpha``, the weight of a negative identical to the anchor in input space.
        sharpness: ``tau_s``; smaller makes the weights fall faster with input distance.
        soft: ``False`` gives hard InfoNCE (non-positive pairs weighted 0).
        weights_from: ``input`` (input-space similarity, the paper) or ``time``.
        time_radius: ``time``: windows at most this many apart in one recording are soft positives.
        time_decay: ``time``: their weight is ``exp(-time_decay * dt)``.
    """

    def __init__(
        self,
        temperature: float = 0.5,
        upper_bound: float = 0.5,
        sharpness: float = 0.5,
        soft: bool = True,
        weights_from: str = "input",
        time_radius: int = 15,
        time_decay: float = 0.0,
    ) -> None:
        super().__init__()
        if temperature <= 0 or sharpness <= 0:
            raise ValueError(f"temperature ({temperature}) and sharpness ({sharpness}) must be > 0")
        if weights_from not in ("input", "time"):
            raise ValueError(f"weights_from must be 'input' or 'time', got {weights_from!r}")
        self.temperature = temperature
        self.upper_bound = upper_bound
        self.sharpness = sharpness
        self.soft = soft
        self.weights_from = weights_from
        self.time_radius = time_radius
        self.time_decay = time_decay

    def weights(
        self,
        inputs: Tensor,
        sample_index: Tensor,
        rows: Tensor | None = None,
        time: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        """``time``: (recording, window) of every sample, needed with ``weights_from="time"``."""
        if self.soft and self.weights_from == "time":
            if time is None:
                raise ValueError(
                    "soft weights from time need each sample's recording and window index: pass `time` "
                    "(the task reads them from the batch's subject/session/trial/window metadata)"
                )
            return time_weights(time[0], time[1], sample_index, self.time_radius, self.time_decay, rows)
        return soft_weights(inputs, sample_index, self.upper_bound, self.sharpness, rows, self.soft)

    def forward(
        self,
        similarity: Tensor,
        inputs: Tensor,
        sample_index: Tensor,
        rows: Tensor | None = None,
        weights: Tensor | None = None,
        logits: Tensor | None = None,
        time: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        """``similarity``: (n, N) rows x all; ``inputs``: (N, ...) model inputs; ``sample_index``:
        (N,) which original each row is a view of; ``rows``: (n,) global index of each owned row;
        ``logits``: :func:`masked_logits` of ``similarity`` if already computed."""
        n, n_all = similarity.shape
        rows = row_indices(rows, n_all, similarity.device)
        if weights is None:
            weights = self.weights(inputs, sample_index, rows, time)
        if logits is None:
            logits = masked_logits(similarity, self.temperature, rows)
        with torch.autocast(device_type=similarity.device.type, enabled=False):
            # log_softmax, not logsumexp: its vectorised exp stays fast on far-negative inputs.
            log_prob = torch.log_softmax(logits, dim=1)
            return -(weights * log_prob).sum() / (n * max(n_all - 1, 1))
