"""Linear probing: embeddings of a frozen encoder and a logistic-regression probe whose L2 penalty is
chosen on the validation part of the training trials (a stated grid), refitted on all of them."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .metrics import present_class_balanced_accuracy

L2_GRID: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
"""The probe's L2 penalties tried on validation (per subject, or once across subjects)."""


class FlattenFeatures(nn.Module):
    """The ``raw_features`` "encoder": the normalised input features themselves, flattened, so the
    same probe and fine-tuning head run on the inputs (no parameters are learned before the head)."""

    def __init__(self, num_channels: int, num_bands: int) -> None:
        super().__init__()
        self.out_features = num_channels * num_bands
        self.register_buffer("anchor", torch.zeros(()), persistent=False)  # carries the device

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(1)


def module_device(module: nn.Module) -> torch.device:
    """Where a module's parameters (or, for a parameter-free one, its buffers) live; CPU if neither."""
    tensor = next(iter([*module.parameters(), *module.buffers()]), None)
    return tensor.device if tensor is not None else torch.device("cpu")


@torch.no_grad()
def embed(encoder: nn.Module, x: Tensor, batch_size: int = 1024) -> Tensor:
    """Encoder outputs of ``x`` in eval mode (BatchNorm on running statistics); mode restored."""
    was_training = encoder.training
    encoder.eval()
    device = module_device(encoder)
    out = torch.cat([encoder(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)])
    encoder.train(was_training)
    return out


def fit_linear_probe(
    train_x: Tensor,
    train_y: Tensor,
    num_classes: int,
    l2: float = 1e-3,
    max_iter: int = 100,
    balanced: bool = False,
) -> Callable[[Tensor], Tensor]:
    """Multinomial logistic regression on standardised features (statistics of ``train_x``), full
    batch L-BFGS with an L2 penalty; ``balanced`` weights each class by n / (K * n_class). Returns a
    function mapping features to logits."""
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    xs = (train_x - mean) / std
    weight = torch.zeros(xs.shape[1], num_classes, requires_grad=True)
    bias = torch.zeros(num_classes, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")
    class_weight = None
    if balanced:
        counts = torch.bincount(train_y, minlength=num_classes).float()
        class_weight = torch.where(counts > 0, len(train_y) / (num_classes * counts.clamp_min(1)), 0.0)

    def closure() -> Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(xs @ weight + bias, train_y, weight=class_weight) + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    w, b = weight.detach(), bias.detach()
    return lambda x: ((x - mean) / std) @ w + b


def select_and_fit_probe(
    x: Tensor,
    y: Tensor,
    val: Tensor,
    num_classes: int,
    l2_grid: Sequence[float] = L2_GRID,
    balanced: bool = False,
) -> tuple[Callable[[Tensor], Tensor], float, float]:
    """Choose the L2 penalty: fit on the training rows outside ``val`` for each value of ``l2_grid``,
    score balanced accuracy on ``val`` (ties: the stronger penalty); refit on every row with it.
    Returns ``(probe, l2, validation balanced accuracy)``."""
    best: tuple[float, float] | None = None
    for l2 in l2_grid:
        probe = fit_linear_probe(x[~val], y[~val], num_classes, l2, balanced=balanced)
        key = (present_class_balanced_accuracy(probe(x[val]), y[val]), l2)
        if best is None or key > best:
            best = key
    val_bacc, l2 = best
    return fit_linear_probe(x, y, num_classes, l2, balanced=balanced), l2, val_bacc
