"""Representation diagnostics: numbers that say why a pre-trained representation helps or not."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def effective_rank(x: Tensor) -> float:
    """``exp(entropy)`` of the normalised singular values of the centred rows (Roy & Vetterli 2007):
    1 when every row lies on one line, the dimension when the spread is isotropic."""
    x = x.double()
    s = torch.linalg.svdvals(x - x.mean(0))
    p = s / s.sum().clamp_min(1e-12)
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def alignment(a: Tensor, b: Tensor) -> float:
    """Mean squared distance between the unit-normalised rows of two views (Wang & Isola 2020; lower:
    views of one sample closer)."""
    return float((F.normalize(a.double(), dim=1) - F.normalize(b.double(), dim=1)).pow(2).sum(1).mean())


def uniformity(z: Tensor, t: float = 2.0) -> float:
    """``log mean_{i<j} exp(-t |zn_i - zn_j|^2)`` of the unit-normalised rows (Wang & Isola 2020;
    lower: spread more evenly over the sphere; about -4 for a uniform spread, 0 for a collapse)."""
    zn = F.normalize(z.double(), dim=1)
    d2 = torch.cdist(zn, zn).pow(2)
    iu = torch.triu_indices(len(zn), len(zn), 1)
    return float(torch.logsumexp(-t * d2[iu[0], iu[1]], 0) - torch.log(torch.tensor(float(iu.shape[1]))))


def mean_off_diagonal_cosine(h: Tensor) -> float:
    """Mean cosine between different rows: near 1 when every representation points the same way."""
    hn = F.normalize(h.double(), dim=1)
    c = hn @ hn.T
    n = len(hn)
    return float((c.sum() - c.diagonal().sum()) / (n * (n - 1)))
