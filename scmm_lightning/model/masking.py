"""Masking policies of SCMM."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

MaskMode = Literal["random", "channel", "hybrid", "parallel"]


def default_mask_num(ratio: float) -> int:
    """The method's default number of masked copies when unset: ``ceil(1.5 / (1 - r))``."""
    return math.ceil(1.5 / (1.0 - ratio))


class Masking(nn.Module):
    """SCMM's masking policy (one of four modes): make ``num_masks`` masked copies of every sample of
    ``x`` (B, C, F); masked entries are 0.

    Primitive masks with ratio ``r``:

    - ``random``: every (channel, band) entry kept with probability ``1 - r``;
    - ``channel``: every channel kept with probability ``1 - r`` (all its bands go together).

    ``hybrid`` draws ``u ~ U(0, 1)`` per (sample, channel) row and uses the random mask for the row
    if ``u > threshold``, else the channel mask; ``parallel`` makes the same choice once per sample.

    Returns ``(masked, keep)`` of shape (num_masks * B, C, F), copy-major: row ``m * B + b`` is
    copy ``m`` of sample ``b``. Randomness comes from ``generator`` (on ``x``'s device).
    """

    def __init__(
        self, mode: MaskMode = "hybrid", ratio: float = 0.5, threshold: float = 0.1, num_masks: int | None = 1
    ) -> None:
        super().__init__()
        if mode not in ("random", "channel", "hybrid", "parallel"):
            raise ValueError(f"mask mode {mode!r} unknown; choose random, channel, hybrid or parallel")
        if not 0.0 <= ratio < 1.0:
            raise ValueError(f"mask ratio must be in [0, 1), got {ratio}")
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"mask threshold must be in [0, 1], got {threshold}")
        self.mode = mode
        self.ratio = ratio
        self.threshold = threshold
        self.num_masks = default_mask_num(ratio) if num_masks is None else int(num_masks)
        if self.num_masks < 1:
            raise ValueError(f"num_masks must be >= 1, got {num_masks}")

    def keep_mask(self, shape: torch.Size, device: torch.device, generator: torch.Generator | None = None) -> Tensor:
        """Boolean keep-mask of ``shape`` = (rows, C, F)."""
        n, c, f = shape
        keep_p = 1.0 - self.ratio
        if self.mode == "random":
            return torch.rand((n, c, f), device=device, generator=generator) < keep_p
        if self.mode == "channel":
            return (torch.rand((n, c, 1), device=device, generator=generator) < keep_p).expand(n, c, f)
        # One draw for everything: columns [0, f) entry mask, f channel mask, f + 1 the choice.
        # Choosing the uniform first and comparing once equals choosing between the two masks.
        u = torch.rand((n, c, f + 2), device=device, generator=generator)
        choice = u[:, :, f + 1 :] if self.mode == "hybrid" else u[:, :1, f + 1 :]
        return torch.where(choice > self.threshold, u[:, :, :f], u[:, :, f : f + 1]) < keep_p

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        b = x.shape[0]
        keep = self.keep_mask(torch.Size((self.num_masks * b, *x.shape[1:])), x.device, generator)
        # a multiply, not masked_fill: several times faster on the CPU (inputs are finite)
        masked = (keep.view(self.num_masks, *x.shape) * x).view(keep.shape)
        return masked, keep
