"""Linear probing: embeddings of a frozen encoder and a logistic-regression probe whose L2 penalty is
chosen on the validation part of the training trials (a stated grid), refitted on all of them."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from .logistic import solve_logistic
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


Probe = Callable[[Tensor], Tensor]


def _standardiser(x: Tensor) -> tuple[Tensor, Tensor]:
    x = x.double()
    return x.mean(0), x.std(0).clamp_min(1e-6)


def _row_weights(y: Tensor, num_classes: int, balanced: bool) -> Tensor:
    if not balanced:
        return torch.ones(len(y), dtype=torch.float64)
    counts = torch.bincount(y, minlength=num_classes).double()
    class_weight = torch.where(counts > 0, len(y) / (num_classes * counts.clamp_min(1)), 0.0)
    return class_weight[y]


def _probe(mean: Tensor, std: Tensor, weight: Tensor, bias: Tensor) -> Probe:
    return lambda x: (((x.double() - mean) / std) @ weight + bias).float()


def fit_linear_probes(
    sets: list[tuple[Tensor, Tensor]], l2: Tensor, num_classes: int, balanced: bool = False
) -> list[list[Probe]]:
    """Multinomial logistic regressions on standardised features (each row set standardised with
    its own statistics), all solved together (``logistic.solve_logistic``; the objective and its
    scale are stated there: ``l2`` multiplies ||W||^2 next to the mean cross-entropy). ``sets`` are
    (x, y) row sets, ``l2`` (len(sets), G) their penalties; returns ``probes[set][g]``."""
    n_max = max(len(x) for x, _ in sets)
    dim = sets[0][0].shape[1]
    xs = torch.zeros(len(sets), n_max, dim, dtype=torch.float64)
    ys = torch.zeros(len(sets), n_max, dtype=torch.long)
    ws = torch.zeros(len(sets), n_max, dtype=torch.float64)
    stats = []
    for i, (x, y) in enumerate(sets):
        mean, std = _standardiser(x)
        stats.append((mean, std))
        xs[i, : len(x)] = (x.double() - mean) / std
        ys[i, : len(x)] = y
        ws[i, : len(x)] = _row_weights(y, num_classes, balanced)
    weight, bias, _ = solve_logistic(xs, ys, ws, l2, num_classes)
    return [[_probe(*stats[i], weight[i, g], bias[i, g]) for g in range(l2.shape[1])] for i in range(len(sets))]


def fit_linear_probe(
    train_x: Tensor, train_y: Tensor, num_classes: int, l2: float = 1e-3, balanced: bool = False
) -> Probe:
    """One probe (see :func:`fit_linear_probes`); ``balanced`` weights each class by
    n / (K * n_class). Returns a function mapping features to logits."""
    return fit_linear_probes([(train_x, train_y)], torch.tensor([[float(l2)]]), num_classes, balanced)[0][0]


def select_and_fit_probes(
    tasks: list[tuple[Tensor, Tensor, Tensor]],
    num_classes: int,
    l2_grid: Sequence[float] = L2_GRID,
    balanced: bool = False,
    batched: bool = True,
) -> list[tuple[Probe, float, float]]:
    """For each task ``(x, y, val)``: choose the L2 penalty (fit on the rows outside ``val`` for each
    value of ``l2_grid``, score balanced accuracy on ``val``; ties: the stronger penalty), then refit
    on every row with it. Returns ``(probe, l2, validation balanced accuracy)`` per task.
    ``batched``: every task x every L2 value in one solve, then every refit in one solve; else one
    problem at a time (the reference loop; same solver, so the same solutions)."""
    grid = torch.tensor([list(map(float, l2_grid))] * len(tasks), dtype=torch.float64)
    fit_sets = [(x[~val], y[~val]) for x, y, val in tasks]
    if batched:
        candidates = fit_linear_probes(fit_sets, grid, num_classes, balanced)
    else:
        candidates = [[fit_linear_probe(x, y, num_classes, l2, balanced) for l2 in l2_grid] for x, y in fit_sets]
    chosen = []
    for (x, y, val), probes in zip(tasks, candidates):
        scores = [
            (present_class_balanced_accuracy(probe(x[val]), y[val]), float(l2)) for probe, l2 in zip(probes, l2_grid)
        ]
        chosen.append(max(scores))
    if batched:
        refits = fit_linear_probes(
            [(x, y) for x, y, _ in tasks], torch.tensor([[l2] for _, l2 in chosen]), num_classes, balanced
        )
        final = [r[0] for r in refits]
    else:
        final = [fit_linear_probe(x, y, num_classes, l2, balanced) for (x, y, _), (_, l2) in zip(tasks, chosen)]
    return [(probe, l2, val_bacc) for probe, (val_bacc, l2) in zip(final, chosen)]


def select_and_fit_probe(
    x: Tensor,
    y: Tensor,
    val: Tensor,
    num_classes: int,
    l2_grid: Sequence[float] = L2_GRID,
    balanced: bool = False,
) -> tuple[Probe, float, float]:
    """:func:`select_and_fit_probes` for one task."""
    return select_and_fit_probes([(x, y, val)], num_classes, l2_grid, balanced)[0]
