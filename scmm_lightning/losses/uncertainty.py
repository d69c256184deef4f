"""Learned uncertainty weighting of several losses."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class UncertaintyWeighting(nn.Module):
    """Combine losses with learned scales ``s_k`` (initialised to ``init``)::

        L = sum_k [ 0.5 / s_k^2 * L_k + log(1 + s_k^2) ]

    With ``learn=False`` the scales stay fixed, giving equal weights ``0.5 / init^2``.
    """

    def __init__(self, num_losses: int = 2, init: float = 1.0, learn: bool = True) -> None:
        super().__init__()
        scales = torch.full((num_losses,), float(init))
        if learn:
            self.scales = nn.Parameter(scales)
        else:
            self.register_buffer("scales", scales)

    @property
    def weights(self) -> Tensor:
        """The effective multipliers ``0.5 / s_k^2``."""
        return 0.5 / self.scales.detach() ** 2

    def forward(self, losses: list[Tensor] | tuple[Tensor, ...]) -> Tensor:
        if len(losses) != self.scales.numel():
            raise ValueError(f"expected {self.scales.numel()} losses, got {len(losses)}")
        s2 = self.scales.float() ** 2
        stacked = torch.stack([loss.float() for loss in losses])
        return (0.5 / s2 * stacked + torch.log1p(s2)).sum()
