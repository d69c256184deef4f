"""Encoder, projector and fine-tuning head of SCMM (the decoder is a plain Linear the task builds)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class CNNEncoder(nn.Module):
    """The paper's 1-D CNN over the band axis, electrodes as input channels.

    ``len(widths)`` blocks of ``Conv1d(k, pad=k//2, no bias) -> BatchNorm1d -> ReLU ->
    MaxPool1d(2, 2, pad=1)``; the output is flattened. With the defaults (``widths=(32, 64, 128)``,
    ``k=8``) and 5 bands, ``h`` has 128 x 3 = 384 values.

    Any replacement encoder must take ``(num_channels, num_bands)`` first, map ``(B, C, F)`` to
    ``(B, D)`` and expose ``out_features = D``; to be exportable it stores each constructor argument
    under its own name (``self.widths = widths``).
    """

    def __init__(
        self, num_channels: int, num_bands: int = 5, widths: Sequence[int] = (32, 64, 128), kernel_size: int = 8
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = num_channels
        for width in widths:
            layers += [
                nn.Conv1d(in_ch, width, kernel_size, padding=kernel_size // 2, bias=False),
                nn.BatchNorm1d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool1d(2, 2, padding=1),
            ]
            in_ch = width
        self.features = nn.Sequential(*layers)
        self.num_channels = num_channels
        self.num_bands = num_bands
        self.widths = tuple(int(w) for w in widths)  # stored under the argument names: export records them
        self.kernel_size = kernel_size
        with torch.no_grad():
            self.out_features = int(self.features(torch.zeros(2, num_channels, num_bands)).flatten(1).shape[1])

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x).flatten(1)


class Projector(nn.Module):
    """``Linear(D, hidden) -> BatchNorm1d -> ReLU -> Linear(hidden, out)``."""

    def __init__(self, in_features: int, hidden_features: int = 256, out_features: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden_features),
            nn.BatchNorm1d(hidden_features),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_features, out_features),
        )

    def forward(self, h: Tensor) -> Tensor:
        return self.net(h)


class ClassifierHead(nn.Module):
    """Fine-tuning head of the method: ``Linear(D, hidden) -> sigmoid -> Linear(hidden, K)``."""

    def __init__(self, in_features: int, num_classes: int, hidden_features: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden_features), nn.Sigmoid(), nn.Linear(hidden_features, num_classes)
        )

    def forward(self, h: Tensor) -> Tensor:
        return self.net(h)
