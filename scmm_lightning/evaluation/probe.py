"""Linear probing: embeddings of a frozen encoder and a logistic-regression probe whose L2 penalty is
chosen on the validation part of the training trials (a stated grid), refitted on all of them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .logistic import solve_logistic
from .metrics import TIE, present_class_balanced_accuracies

L2_GRID: tuple[float, ...] = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 0.3, 1.0, 3.0, 10.0)
"""The probe's L2 penalties tried on validation (per subject, or once across subjects). The scale
(``logistic.py``): ``l2`` multiplies ||W||^2 beside the MEAN cross-entropy over standardised
features, so scikit-learn's ``C`` is ``1 / (2 l2 n)``; for the few hundred to few thousand rows of
a target subject or a cross-subject fit, the grid spans C from ~2e-5 to ~2. The earlier grid
(1e-4 .. 1, decades) ended at 1.0 and on eegmat (``benchmarks/probe_vs_sklearn.py``) every fold chose
that end, while scikit-learn's own cross-validation chose C = 7.7e-4 (l2 ~ 0.3 at ~2,000 rows): the
optimum sits near the strong end. Decades up to 10 let one fold jump to 10 (-2.2 points against
scikit-learn); half decades from 1e-3 to 10 chose 3 / 1 / 0.3 / 1, all inside, -1.1 points. Values
below 1e-3 were never chosen and are the slowest to converge. A choice at either end that beats its
neighbour is reported (``l2_at_edge``)."""


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


class Probe:
    """A fitted linear probe: logits = ((x - mean) / std) @ weight + bias (float64 inside, float32
    out). :meth:`as_linear` folds the standardisation into one ``nn.Linear`` (the head that LP-FT
    fine-tuning starts from: at step 0 the fine-tuned model IS this probe)."""

    def __init__(self, mean: Tensor, std: Tensor, weight: Tensor, bias: Tensor, l2: float | None = None) -> None:
        self.mean, self.std, self.weight, self.bias = mean, std, weight, bias
        self.l2 = l2  # the penalty it was fitted under (l2 ||weight||^2; None: not known)

    def head_penalty(self) -> tuple[float, Tensor]:
        """``(l2, std)``: its objective's penalty on the head :meth:`as_linear` gives, whose weight
        is ``V = (weight / std).T``, is ``l2 * ||V diag(std)||^2`` (``finetune.head_l2: probe``)."""
        if self.l2 is None:
            raise ValueError("this probe does not know its L2 penalty (fit it with fit_linear_probes)")
        return float(self.l2), self.std.float()

    def __call__(self, x: Tensor) -> Tensor:
        return (((x.double() - self.mean) / self.std) @ self.weight + self.bias).float()

    def affine(self) -> tuple[Tensor, Tensor]:
        """(A, c), float64, with the same logits x A + c: A = W / std, c = b - (mean / std) @ W."""
        scaled = self.weight / self.std[:, None]
        return scaled, self.bias - self.mean @ scaled

    def as_linear(self) -> nn.Linear:
        """``nn.Linear(D, K)`` computing the same logits (:meth:`affine`)."""
        scaled, bias = self.affine()
        layer = nn.Linear(scaled.shape[0], scaled.shape[1])
        with torch.no_grad():
            layer.weight.copy_(scaled.T.float())
            layer.bias.copy_(bias.float())
        return layer


def class_balance_weights(y: Tensor, num_classes: int) -> Tensor:
    """Each class's weight n / (K * n_class) over the labels ``y`` (0 for a class absent from them), in
    float64: a class-balanced probe's weights, and LP-FT's fine-tuning loss's under
    ``finetune.class_balanced_loss``."""
    counts = torch.bincount(y, minlength=num_classes).double()
    return torch.where(counts > 0, len(y) / (num_classes * counts.clamp_min(1)), 0.0)


def _row_weights(y: Tensor, member: Tensor, num_classes: int, balanced: bool) -> Tensor:
    """1 on ``member`` rows (0 elsewhere), or n / (K * n_class) over them for a balanced probe."""
    if not balanced:
        return member.double()
    return class_balance_weights(y[member], num_classes)[y] * member


def solver_device(device: torch.device | str | None) -> torch.device:
    """Where the probe's solver runs for embeddings (or an encoder) on ``device``: a CUDA device
    itself, the CPU otherwise (``None`` included). The solver keeps its iterates, objective and line
    search in float64, which MPS does not have. On the lent H200 (the benchmark's probe call with
    ``--device cuda``) the batched call took 0.59 s on the GPU (session 28, float64 products; 0.75 s
    in session 27, float32) against 0.73 s on that machine's 16 CPU cores (session 26), the
    per-problem loop 29.0 s against 16.8 s: a GPU does not speed a call this small up much, it spares
    the copy to the CPU and the host's cores."""
    device = torch.device("cpu" if device is None else device)
    return device if device.type == "cuda" else torch.device("cpu")


def fit_linear_probes(
    tasks: list[tuple[Tensor, Tensor, list[Tensor]]],
    l2: Tensor,
    num_classes: int,
    balanced: bool = False,
    init: list[tuple[Tensor, Tensor]] | None = None,
    rows: int | None = None,
    device: torch.device | str | None = None,
) -> list[list[list[Probe]]]:
    """Multinomial logistic regressions on standardised features, all solved together
    (``logistic.solve_logistic``; the objective and its scale are stated there: ``l2`` multiplies
    ||W||^2 next to the mean cross-entropy). A task is ``(x, y, fits)``: rows, labels and boolean
    masks over the rows, each the rows of one fit (a fold's training rows, or every row), which is
    standardised with its own rows' statistics; ``l2`` (len(tasks), G) the penalties tried on every
    fit of a task; ``init`` one start per task (``Probe.affine``'s (A, c), for all its fits and
    penalties) instead of 0; ``rows``: pad every task to this many rows (weight 0) instead of the
    most any task has (a problem's arithmetic depends on its padded length, not on the other
    problems: solved alone at the padding of a bigger solve it gives that solve's bits); ``device``:
    where the solve runs (:func:`solver_device`: a CUDA device, else the CPU), the probes returned
    on the CPU either way (a GPU's products sum in another order: its probes equal the CPU's to the
    solver's tolerance, not bit for bit). Returns ``probes[task][fit][g]``."""
    grid = l2.shape[1]
    n_max = max([len(x) for x, _, _ in tasks] + [rows or 0])
    fits = max(len(masks) for *_, masks in tasks)
    dim = tasks[0][0].shape[1]
    xs = torch.zeros(len(tasks), n_max, dim, dtype=torch.float64)
    ys = torch.zeros(len(tasks), n_max, dtype=torch.long)
    ws = torch.zeros(len(tasks), fits * grid, n_max, dtype=torch.float64)  # unused slots: no rows, W stays 0
    scale = []
    for i, (x, y, masks) in enumerate(tasks):
        # each task's rows standardised once (its fits' statistics are then near 0 and 1)
        x = x.double()
        mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
        scale.append((mean, std))
        xs[i, : len(x)] = (x - mean) / std
        ys[i, : len(x)] = y
        for j, mask in enumerate(masks):
            ws[i, j * grid : (j + 1) * grid, : len(x)] = _row_weights(y, mask, num_classes, balanced)
    start = None
    if init is not None:  # x A + c = z (S A) + (c + M A) on the standardised rows z = (x - M) / S
        a = torch.stack([s[:, None] * a.double() for (_, s), (a, _) in zip(scale, init)])
        c = torch.stack([c.double() + m @ a.double() for (m, _), (a, c) in zip(scale, init)])
        start = (a[:, None].expand(-1, fits * grid, -1, -1), c[:, None].expand(-1, fits * grid, -1))
    on = solver_device(device)
    if start is not None:
        start = tuple(v.to(on) for v in start)
    solved = solve_logistic(xs.to(on), ys.to(on), ws.to(on), l2.double().repeat(1, fits).to(on), num_classes,
                            init=start)  # fmt: skip
    weight, bias, mean, std, _ = (v.cpu() for v in solved)
    return [
        [
            [Probe(m + s * mean[i, j * grid + g], s * std[i, j * grid + g], weight[i, j * grid + g],
                   bias[i, j * grid + g], float(l2[i, g])) for g in range(grid)]
            for j in range(len(masks))
        ]
        for i, ((m, s), (_, _, masks)) in enumerate(zip(scale, tasks))
    ]  # fmt: skip


def fit_linear_probe(
    train_x: Tensor,
    train_y: Tensor,
    num_classes: int,
    l2: float = 1e-3,
    balanced: bool = False,
    init: tuple[Tensor, Tensor] | None = None,
    fit: Tensor | None = None,
    rows: int | None = None,
    device: torch.device | str | None = None,
) -> Probe:
    """One probe (see :func:`fit_linear_probes`) on the rows of the boolean mask ``fit`` (default:
    every row), ``rows`` the padding, solved on ``device`` (:func:`solver_device`); ``balanced``
    weights each class by n / (K * n_class). Returns a function mapping features to logits."""
    fit = torch.ones(len(train_x), dtype=torch.bool) if fit is None else fit
    l2_ = torch.tensor([[float(l2)]], dtype=torch.float64)
    return fit_linear_probes(
        [(train_x, train_y, [fit])], l2_, num_classes, balanced, None if init is None else [init], rows, device
    )[0][0][0]


@dataclass
class SelectedProbe:
    """The outcome of choosing a probe's L2 on validation folds: the probe refitted on every row
    with the chosen ``l2``, the mean validation balanced accuracy over folds at it, each fold's
    probe at it (fitted on the fold's training rows: the heads LP-FT's fold models start from) and
    whether the choice sits at an end of the grid, strictly better than its neighbour (the optimum
    may lie beyond it; a tie at the end is not reported); ``holdout_probe``: with ``holdout_fits``,
    the probe at the chosen ``l2`` fitted on those rows (``selection: cv_probe``'s LP-FT head);
    ``fold_heads``: the probe of each fold its LP-FT fold model starts from (``fold_probes``, or with
    ``fold_head_l2="other_folds"`` each at the L2 chosen on the other folds)."""

    probe: Probe
    l2: float
    val_balanced_accuracy: float
    fold_probes: list[Probe]
    at_edge: bool
    holdout_probe: Probe | None = None
    fold_heads: list[Probe] | None = None


def _validation_scores(
    x: Tensor, y: Tensor, per_fold: list[list[Probe]], folds: list[Tensor], num_classes: int
) -> Tensor:
    """Each fold's (rows) and grid value's (columns) probe's balanced accuracy on the fold's validation
    rows (``Probe.__call__``'s formula, every value of a fold in one batched product; both engines
    score this way)."""
    per_value = []
    for probes, val in zip(per_fold, folds):
        mean, std, weight, bias = (torch.stack(v) for v in zip(*((p.mean, p.std, p.weight, p.bias) for p in probes)))
        rows = x[val].double()
        logits = torch.baddbmm(bias[:, None], (rows - mean[:, None]) / std[:, None], weight).float()
        target = y[val].expand(len(probes), -1)
        per_value.append(present_class_balanced_accuracies(logits, target, torch.ones_like(target, dtype=torch.bool),
                                                           num_classes).double())  # fmt: skip
    return torch.stack(per_value)


def _best(scores: list[float], grid_values: list[float]) -> int:
    """The grid value with the best score, scores within ``metrics.TIE`` of the best tying (ties:
    the stronger penalty)."""
    top = max(scores)
    return max((g for g in range(len(grid_values)) if scores[g] >= top - TIE), key=lambda g: grid_values[g])


def select_and_fit_probes(
    tasks: list[tuple[Tensor, Tensor, list[Tensor]]],
    num_classes: int,
    l2_grid: Sequence[float] = L2_GRID,
    balanced: bool = False,
    batched: bool = True,
    holdout_fits: list[Tensor] | None = None,
    fold_head_l2: str = "shared",
    device: torch.device | str | None = None,
) -> list[SelectedProbe]:
    """For each task ``(x, y, folds)`` (``folds``: validation masks over the rows; one mask is a
    plain hold-out, K masks K-fold cross-validation): fit on each fold's other rows for every value
    of ``l2_grid``, score balanced accuracy on the fold's validation rows, choose the value with the
    best mean over folds (ties: the stronger penalty), then refit on every row with it.
    ``batched``: every task x fold x L2 value in one solve (the folds on their task's shared rows),
    then every refit in one solve; else one problem (fold x L2 value, refit) per solve, the fold as
    a row mask over its task's rows padded as in the batched solve (the reference loop: the same
    problems, rows and solver; a problem's arithmetic does not depend on the others in its solve,
    so both engines give bit for bit the same probes, checked in ``tests/test_batched_evaluation.py``;
    fitted on a gathered copy of its rows a fold's solution differed in rounding (up to 1.5e-4 in a
    weight on the benchmark's probe call), and a near-tie between two L2 values there broke
    differently). Each refit starts from the mean of its folds' solutions at the chosen L2, in both.
    ``holdout_fits`` (one boolean mask over each task's rows): also fit, at the chosen L2 and from the
    same start, a probe on those rows only (solved beside the refit on the task's shared rows).
    ``fold_head_l2``: which probe of each fold LP-FT's fold model starts from (``fold_heads`` of the
    result): ``shared``, the fold's probe at the chosen L2; ``other_folds``, at the L2 best on the
    other folds' validation rows (``FinetuneConfig.fold_head_l2``). ``device``: where every solve
    runs, either engine (:func:`solver_device`; the protocol passes its encoder's device); the
    validation scoring and the probes returned stay on the CPU."""
    if fold_head_l2 not in ("shared", "other_folds"):
        raise ValueError(f"fold_head_l2={fold_head_l2!r}: must be 'shared' or 'other_folds' (finetune.fold_head_l2)")
    grid_values = list(map(float, l2_grid))
    grid = torch.tensor([grid_values], dtype=torch.float64)
    every = lambda x: torch.ones(len(x), dtype=torch.bool)  # noqa: E731
    padded = max(len(x) for x, _, _ in tasks)  # the batched solves' rows, for the loop's too
    if batched:
        per_task = fit_linear_probes(
            [(x, y, [~val for val in folds]) for x, y, folds in tasks], grid.expand(len(tasks), -1), num_classes,
            balanced, device=device,
        )  # fmt: skip
    else:
        per_task = [
            [[fit_linear_probe(x, y, num_classes, l2, balanced, fit=~val, rows=padded, device=device)
              for l2 in grid_values]
             for val in folds]
            for x, y, folds in tasks
        ]  # fmt: skip
    chosen, heads = [], []
    for (x, y, folds), per_fold in zip(tasks, per_task):
        per_fold_scores = _validation_scores(x, y, per_fold, folds, num_classes)
        scores = per_fold_scores.mean(0).tolist()
        best = _best(scores, grid_values)
        # at an edge AND strictly better than its inner neighbour: the optimum may lie beyond the grid
        inner = 1 if best == 0 else len(grid_values) - 2
        edge = len(grid_values) > 1 and best in (0, len(grid_values) - 1) and scores[best] > scores[inner] + TIE
        chosen.append((best, round(scores[best], 9), [probes[best] for probes in per_fold], edge))
        if fold_head_l2 == "other_folds" and len(folds) > 1:  # fold f's L2 from the other folds' rows only
            others = [
                _best(torch.cat([per_fold_scores[:f], per_fold_scores[f + 1 :]]).mean(0).tolist(), grid_values)
                for f in range(len(folds))
            ]  # fmt: skip
            heads.append([probes[g] for probes, g in zip(per_fold, others)])
        else:
            heads.append(None)
    # each refit starts from the mean of its folds' solutions at the chosen L2 (the same optimum:
    # 23 vs 34 (CNN) and 18 vs 29 (raw features) iterations on average on the benchmark's probe call)
    starts = [
        tuple(torch.stack(v).mean(0) for v in zip(*(p.affine() for p in fold_probes)))
        for _, _, fold_probes, _ in chosen
    ]
    extra = holdout_fits if holdout_fits is not None else [None] * len(tasks)
    if batched:
        l2_chosen = torch.tensor([[grid_values[g]] for g, *_ in chosen], dtype=torch.float64)
        fits = [[every(x)] + ([] if mask is None else [mask]) for (x, _, _), mask in zip(tasks, extra)]
        solved = fit_linear_probes([(x, y, f) for (x, y, _), f in zip(tasks, fits)], l2_chosen, num_classes, balanced,
                                   starts, device=device)  # fmt: skip
        final = [r[0][0] for r in solved]
        held = [r[1][0] if len(r) > 1 else None for r in solved]
    else:
        final = [
            fit_linear_probe(x, y, num_classes, grid_values[g], balanced, start, rows=padded, device=device)
            for (x, y, _), (g, *_), start in zip(tasks, chosen, starts)
        ]
        held = [
            None
            if mask is None
            else fit_linear_probe(x, y, num_classes, grid_values[g], balanced, start, mask, padded, device)
            for (x, y, _), (g, *_), start, mask in zip(tasks, chosen, starts, extra)
        ]
    return [
        SelectedProbe(probe, grid_values[g], score, fold_probes, edge, holdout, own or fold_probes)
        for probe, holdout, (g, score, fold_probes, edge), own in zip(final, held, chosen, heads)
    ]


def select_and_fit_probe(
    x: Tensor,
    y: Tensor,
    val: Tensor,
    num_classes: int,
    l2_grid: Sequence[float] = L2_GRID,
    balanced: bool = False,
) -> SelectedProbe:
    """:func:`select_and_fit_probes` for one task with one validation mask (a hold-out)."""
    return select_and_fit_probes([(x, y, [val])], num_classes, l2_grid, balanced)[0]
