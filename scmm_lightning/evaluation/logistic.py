"""Many multinomial logistic regressions solved at once: the linear probe's solver.

Problems come in tasks: a task is one set of rows ``x`` (a subject's embeddings, say), and each of
its problems ``p`` fits a subset of them (row weights ``w_p``, 0 = not in the subset: a
cross-validation fold's training rows, or every row) standardised with that subset's own mean
``m_p`` and standard deviation ``s_p``, under its own L2 penalty. Problem ``p`` minimises

    f_p(W, b) = sum_i w_pi * CE(((x_i - m_p) / s_p) W + b, y_i) / sum_i w_pi  +  l2_p * ||W||_F^2

(``w_pi`` = 1, or n_p / (K * n_p,class) for class-balanced probes: the weighted mean cross-entropy
of ``F.cross_entropy(weight=...)``; the bias is not penalised). So ``l2`` is on the scale of a mean
loss: with standardised features, ``l2 = 1 / (2 C n)`` is scikit-learn's ``C`` for ``n`` rows.

The problems of a task share its rows: their logits are one matrix product of the rows with every
problem's weights side by side, the standardisation folded into the weights
(``x W / s - (m / s) W``), and so are their gradients. Against one product per problem over its
own copy of its rows this took 15 vs 36 ms per evaluation on the benchmark's probe call (15
SEED-IV-shaped subjects x 3 folds x 5 L2 values, 384 features; ``benchmarks/evaluation.py``).

The problems are solved together by L-BFGS (history 20) with an Armijo backtracking line search,
both vectorised over problems: every problem takes its own steps, keeps its own curvature pairs and
stops on its own (gradient max-norm below ``tol``). The objective, the iterates and the line search
are float64 (the problems are strongly convex, and the solution, not an iteration budget, is what
is compared between engines and with scikit-learn); the gradient's matrix product and the stored
curvature pairs are float32 on the CPU (float64 on a GPU: ``working_dtype``): on the benchmark's
probe call that changed no problem's iteration count beyond the history's own effect (mean 35.4 ->
31.8 iterations for history 10 -> 20) and cut
a call from ~3.9 to ~3.2 s. Logits in float32 did not work: the Armijo test then compares values
that differ by less than their rounding, and weakly penalised problems stalled at ``max_iter``.
What works is the logits kept in float64 and moved along each step: the step's CHANGE of the
logits (rows x direction, linear in it) is one float32 product, accurate to its own relative
rounding, so the Armijo test sees the objective along the line to ~1e-7 of the step's effect;
every halving is then elementwise (no product), and one float32 product gives the gradient at the
accepted point. The kept logits drift from the exact ones by the accumulated rounding (without
recomputation at most 1.2e-5 on the problems still running at the end of the benchmark's solves,
also at tol 1e-7) and are recomputed exactly every ``REFRESH`` iterations. Solver time on the
benchmark's probe call 2.93 -> 2.67 s (mean of two runs; the same iterations for every problem; the
loop engine's one-problem solves gain ~3%). These three figures come from ad-hoc scripts run on the
benchmark's solves (not kept in the repo); ``benchmarks/evaluation.py`` gives the call's times.

Session 22, the same bits (every problem of the benchmark's probe call and of 12 random solves with
class weights, padding rows, constant features and starts, old and new solver side by side): the
labels kept as indices, not one-hot (the loss's label term a gather, the gradient's a scatter of -1;
the other classes' terms were exact zeros), the gradient assembled in
place in its output (no ``cat``), the float32 casts folded into the products' operands and the
float64 promotion into the following sum, and the ``where`` passes skipped when every problem of the
block moved (or none needs the steepest-descent restart). On this 2-core host an elementwise pass
that writes a fresh tensor costs ~1.5-2x one that updates a tensor in place (``mul`` 64-82 us,
``addcmul_`` 32-41 us on a (15, 15, 1540) float32 block); the solver time of the benchmark's probe
call went 1.47 -> 1.29 s (medians of 10 calls, old and new alternating in one process).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

REFRESH = 25  # iterations between exact (float64 product) recomputations of the kept logits


def working_dtype(device: torch.device) -> torch.dtype:
    """The precision of the solver's gradient and logit-change products and of its curvature history:
    float32 on the CPU (module docstring), float64 on a GPU. There cuBLAS and the reduction kernels
    choose how to split a sum by the shapes of the whole block, so a problem's float32 arithmetic
    depends on how many problems share its solve: on the lent H200 (session 27, the benchmark's
    probe call, ``--device cuda``), in float32, the per-problem loop and the batched solve chose a
    different L2 for one subject of 30 (raw features, subject 10, 0.01 vs 0.1: a tolerance-level
    difference of the solutions moved a borderline validation window; the CPU's padding, ``_bmm``,
    has no cuBLAS counterpart). In float64 such sums differ by ~1e-16, which should not reach the
    solver's stopping and line-search decisions: on the CPU, with the products' sums split by the
    block's shape, float32 reproduced that subject's difference and float64 made none
    (``tests/test_batched_evaluation.py::test_a_block_shaped_summation_moves_no_probe_choice_in_float64``);
    and on the H200 (session 28, ``benchmarks/device_runs/2026-12-04-h200-session28/``) float64 gave
    the loop's L2 values and metrics where float32 on the same machine again chose another L2 for
    subject 10 (``tests/test_gpu.py::test_the_probe_engines_give_the_same_probes_on_the_gpu`` passed).
    The solve is launch-bound there at the probe's sizes (the batched call 0.59 s in float64, 0.56 s in
    float32, one call each); the float64 products are ~0.7 GFLOP an iteration on the benchmark's CNN
    fold solve (15 subjects x 15 problems x 4 classes x 384 features x 504 rows, two products), ~35
    GFLOP a call: ~30 ms at a consumer GPU's float64 rate (~1 TFLOP/s; an estimate, not measured).
    The CPU keeps float32: its engines already agree bit for bit, and float64 there made the benchmark's
    batched probe call 1.24x slower (1.76 vs 1.42 s, ``benchmarks/evaluation.py --workloads probe
    --engines batched --repeats 1 --probe_precision float64`` vs ``auto``, one call each, session 27)."""
    return torch.float64 if device.type == "cuda" else torch.float32


def _bmm(a: Tensor, b: Tensor) -> Tensor:
    """``torch.bmm`` with ``a``'s rows padded to a multiple of 4 (zero rows, dropped after): a row's
    result then does not depend on how many rows the product has (BLAS computes rows of a partial
    block of 4 in another order: with 3 classes, a one-problem solve (3 rows) and a 12-problem solve
    (36 rows) differed by ~1e-7; padded, bit for bit), so a problem solved alone gives the bits it
    gets in a batched solve (``tests/test_batched_evaluation.py``). ``b`` is made contiguous here (the
    working set stores its rows in both layouts, so this copies nothing there), never passed as a
    transposed view: with the rows' transposed view as ``b`` and 96 or more features, MKL's float32
    product summed a row in an order that depended on the product's number of rows (fewer than 16
    or not), tasks and threads, and on 2 threads its float64 product of one task's 60 rows did too,
    so a problem solved alone differed from the same problem in a batched solve (session 24, the
    benchmark's probe call, 384 features: on 2 threads 26 of its 450 fold problems, those finishing
    in a tail block of several tasks and few rows, and all 30 refits, up to 1.6e-6 in a weight; on
    one thread every problem, up to 4e-4); with contiguous operands every combination of 1-15 tasks
    and 4-60 rows checked gave the same bits on 1 and 2 threads (ad-hoc grid), and so does every
    problem of that call and of ``test_solver_bits_do_not_depend_on_the_block``."""
    rows = a.shape[1]
    if rows % 4:
        a = torch.nn.functional.pad(a, (0, 0, 0, 4 - rows % 4))
    return torch.bmm(a, b.contiguous())[:, :rows]


@dataclass
class _Problems:
    """The data of T tasks x P problems (the working set); ``take`` keeps some of them."""

    x_t: Tensor  # (T, D, n) rows, transposed and contiguous (``_bmm``), shared by a task's problems
    x_work: Tensor  # (T, n, D) the rows in the working precision (``working_dtype``: the gradient's product)
    x_work_t: Tensor  # (T, D, n) the same transposed and contiguous (the logit change's product)
    label: Tensor  # (T, 1, 1, n) the labels, as indices into the logits' class dimension
    # a task's fields, shared by its problems (the fields below: each problem's own)
    SHARED = ("x_t", "x_work", "x_work_t", "label")
    w: Tensor  # (T, P, n) row weights divided by their sum
    inv_std: Tensor  # (T, P, 1, D)
    shift: Tensor  # (T, P, 1, D) mean / std
    l2: Tensor  # (T, P)

    def _field(self, name: str, tasks: Tensor, index: Tensor, every: bool = False) -> Tensor:
        """Field ``name`` of tasks ``tasks`` and their problems ``index`` (``take``'s arguments); a
        shared field is not copied when ``every`` task is kept."""
        value = getattr(self, name)
        if name in _Problems.SHARED:
            return value if every else value[tasks]
        return value[tasks[:, None], index]

    def take(self, tasks: Tensor, index: Tensor) -> _Problems:
        """Tasks ``tasks`` (T',) and, of task ``tasks[i]``, the problems at ``index[i]`` (T', P')."""
        every = len(tasks) == len(self.x_t)  # every task (``tasks`` is sorted and distinct): no copy of the rows
        return _Problems(**{f.name: self._field(f.name, tasks, index, every) for f in fields(self)})

    def _affine(self, theta: Tensor, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
        """theta (T, P, K*D + K) (weights stored transposed, (K, D)) -> the weights on the task's rows
        (W / s, (T, P, K, D), computed in float64 and stored as ``dtype``) and the bias (b - (m / s) W,
        (T, P, K))."""
        t, p, _ = theta.shape
        d = self.x_work.shape[2]
        k = theta.shape[2] // (d + 1)
        weight = theta[..., : k * d].view(t, p, k, d)
        scaled = torch.mul(weight, self.inv_std, out=torch.empty(t, p, k, d, dtype=dtype, device=theta.device))
        return scaled, theta[..., k * d :] - (weight * self.shift).sum(-1)

    def logits(self, theta: Tensor) -> Tensor:
        """The logits (T, P, K, n) of ``theta``: exact, a float64 product."""
        t, p, _ = theta.shape
        scaled, offset = self._affine(theta)
        k = scaled.shape[2]
        return _bmm(scaled.reshape(t, p * k, -1), self.x_t).view(t, p, k, -1) + offset[..., None]

    def logit_change(self, d: Tensor) -> Tensor:
        """The change of the logits along a step ``d`` (linear in it): a product in the working precision
        (float32 on the CPU), in float64."""
        t, p, _ = d.shape
        scaled, offset = self._affine(d, self.x_work.dtype)  # rounded once, as ``(W / s).float()``
        k = scaled.shape[2]
        out = _bmm(scaled.view(t, p * k, -1), self.x_work_t).view(t, p, k, -1)
        return out + offset[..., None]  # (float32 on the CPU) + float64: in float64, as ``out.double() + offset``

    def value(self, z: Tensor, theta: Tensor, at: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """f (T, P) at ``theta`` from its logits ``z``, and the log-probabilities (for :meth:`gradient`).
        ``at``: ``take``'s arguments when ``z`` and ``theta`` are those of a block of the problems (the
        line search's): only the labels, weights and penalties are gathered, not the rows (``take``
        copied every task's rows, which the value does not use: the halvings took 0.10 s of the
        benchmark's batched probe call with the copies and 0.05 s without, the same bits; its phases
        timed in an ad-hoc copy of this module, 3 calls each)."""
        t, p, k, n = z.shape
        d = self.x_work.shape[2]
        label, w, l2 = (
            (self.label, self.w, self.l2) if at is None else (self._field(f, *at) for f in ("label", "w", "l2"))
        )
        logp = torch.log_softmax(z, dim=2)
        # the label's log-probability, bit for bit ``(logp * onehot).sum(2)`` (the other terms are exact zeros)
        ce = -logp.gather(2, label.expand(t, p, 1, n)).squeeze(2)
        f = (ce * w).sum(-1) + l2 * theta[..., : k * d].pow(2).sum(-1)
        return f, logp

    def gradient(self, logp: Tensor, theta: Tensor) -> Tensor:
        """The gradient (T, P, K*D + K) of f at ``theta`` from its log-probabilities: d f / d logits =
        (softmax - onehot) * w_pi / sum_i w_pi, times the rows (a product in the working precision)."""
        t, p, k, n = logp.shape
        d = self.x_work.shape[2]
        weight = theta[..., : k * d].view(t, p, k, d)
        # in place, in the order of ``(exp(logp) - onehot) * w`` and ``g * inv_std - colsum * shift + 2 l2 W``:
        # the same bits with fewer fresh tensors (written memory costs more than memory read: module
        # docstring); the one-hot labels subtracted as 1 at each label (the other entries minus 0 are exact)
        where = self.label.expand(t, p, 1, n)
        dlogits = logp.exp().scatter_add_(2, where, logp.new_full((), -1.0).expand(t, p, 1, n))
        dlogits.mul_(self.w[:, :, None, :])
        colsum = dlogits.sum(-1)
        g_scaled = _bmm(dlogits.view(t, p * k, n).to(self.x_work.dtype), self.x_work).view(t, p, k, d)
        out = torch.empty(t, p, k * d + k, dtype=torch.float64, device=theta.device)
        g_weight = out[..., : k * d].view(t, p, k, d)
        torch.mul(g_scaled, self.inv_std, out=g_weight)  # (float32 on the CPU) x float64: in float64
        g_weight.sub_(colsum[..., None] * self.shift).add_(2 * self.l2[..., None, None] * weight)
        out[..., k * d :] = colsum
        return out


def _pack(keep: Tensor) -> tuple[Tensor, Tensor]:
    """The tasks (rows of ``keep``, (T, P)) with a problem to keep, and for each its problems' positions,
    kept ones first, as many as the most any task keeps: ``take``'s arguments for the smallest block
    holding every kept problem (the rest of the block: other problems of the same tasks)."""
    tasks = keep.any(1).nonzero().squeeze(1)
    width = int(keep.sum(1).max())
    index = torch.argsort((~keep[tasks]).to(torch.uint8), dim=1, stable=True)[:, :width]
    return tasks, index


def solve_logistic(
    x: Tensor,
    y: Tensor,
    w: Tensor,
    l2: Tensor,
    num_classes: int,
    max_iter: int = 200,
    tol: float = 1e-4,
    history: int = 20,
    init: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Solve T tasks x P problems: ``x`` (T, n, D) rows (each task's standardised by the caller: the
    problems' statistics are taken as E[x^2] - E[x]^2), ``y`` (T, n) labels, ``w`` (T, P, n) each
    problem's row weights (0 = not its row, padding included), ``l2`` (T, P) penalties. Each problem
    standardises its rows with their (unweighted) mean and standard deviation. ``tol`` on the
    gradient's max-norm (of a MEAN loss: 1e-4 moves no prediction in our checks) and ``max_iter``:
    the weakly penalised problems on a random CNN's correlated features are ill-conditioned (on the
    DEAP fixture, with an ad-hoc script not kept in the repo: 130 iterations on average, up to 500,
    at tol 1e-5; 41 s of a 49 s probe call, 20 s at these defaults), so the defaults trade the last
    digits for time. ``init``: a start other than 0 (A (T, P, D, K), c (T, P, K): logits x A + c on
    ``x``), e.g. a refit's from its folds' solutions (the same optimum, fewer iterations). Returns
    ``weight`` (T, P, D, K) and ``bias`` (T, P, K) on the standardised rows, the standardisation
    ``mean`` and ``std`` (T, P, D) and the iterations each problem took (T, P)."""
    x, w, l2 = x.double(), w.double(), l2.double()
    t, n, d = x.shape
    p, k = l2.shape[1], num_classes
    member = w > 0
    count = member.sum(-1, keepdim=True).double()  # (t, p, 1)
    mean = _bmm(member.double(), x) / count.clamp_min(1)
    var = _bmm(member.double(), x * x) - count * mean * mean
    std = (var.clamp_min(0) / (count - 1).clamp_min(1)).sqrt()
    # a feature (nearly) constant on a problem's rows (a dead ReLU unit in a fold, say) is left out of
    # that problem (scale 0, weight stays 0, std reported as 1): scaled by 1 / std it would blow the
    # rounding of (x - m) up into gradient noise above ``tol`` (measured: 300 iterations instead of 44)
    constant = std < 1e-6
    std = torch.where(constant, 1.0, std)
    label = y.clamp_min(0)[:, None, None]  # (t, 1, 1, n)
    inv_std = torch.where(constant, 0.0, 1 / std)
    work = working_dtype(x.device)
    x_t = x.mT.contiguous()
    x_work = x.to(work)
    x_work_t = x_t if work == x.dtype else x_work.mT.contiguous()
    data = _Problems(x_t, x_work, x_work_t, label, w / w.sum(-1, keepdim=True).clamp_min(1e-300),
                     inv_std[:, :, None], (mean * inv_std)[:, :, None], l2)  # fmt: skip
    dim = d * k + k
    opts = dict(dtype=torch.float64, device=x.device)
    theta_out = torch.zeros(t, p, dim, **opts)
    iters_out = torch.zeros(t, p, dtype=torch.long, device=x.device)
    # the working set: the tasks with a problem still running, and of each task its problems still
    # running first, padded with solved ones to the most any task has (``_pack``), with their state.
    # It shrinks (the block written out) only when it would lose a quarter of its size: compacting
    # copies every task's rows, and copying at every iteration took ~30% of a solve (DEAP-shaped
    # probe call). Packing each task's own running problems (rather than keeping a problem slot
    # while any task runs it) cut the benchmark's CNN probe solve from 2.24 to 1.67 s
    task_ids = torch.arange(t, device=x.device)
    slot_ids = torch.arange(p, device=x.device).expand(t, p)
    theta = torch.zeros(t, p, dim, **opts)
    if init is not None:  # logits x A + c on the caller's rows -> each problem's standardised rows
        a, c = init[0].double(), init[1].double()
        theta[..., : k * d] = torch.where(constant[..., None], 0.0, std[..., None] * a).mT.reshape(t, p, k * d)
        theta[..., k * d :] = c + torch.einsum("tpd,tpdk->tpk", mean, a)
    z = data.logits(theta)
    f, logp = data.value(z, theta)
    g = data.gradient(logp, theta)
    s_hist = torch.zeros(history, t, p, dim, dtype=work, device=x.device)
    y_hist = torch.zeros_like(s_hist)
    rho = torch.zeros(history, t, p, dtype=work, device=x.device)
    gamma = torch.ones(t, p, **opts)
    active = g.abs().amax(-1) > tol
    iters = torch.zeros(t, p, dtype=torch.long, device=x.device)

    def write_out() -> None:
        theta_out[task_ids[:, None], slot_ids] = theta  # every position is a distinct problem
        iters_out[task_ids[:, None], slot_ids] = iters

    for it in range(max_iter):
        if not active.any():
            break
        if int(active.any(1).sum()) * int(active.sum(1).max()) <= 0.75 * active.numel():
            write_out()
            kt, ki = _pack(active)
            task_ids, slot_ids, data = task_ids[kt], slot_ids[kt[:, None], ki], data.take(kt, ki)
            theta, f, g, active, iters, gamma, z = (v[kt[:, None], ki] for v in (theta, f, g, active, iters, gamma, z))
            s_hist, y_hist, rho = (v[:, kt[:, None], ki] for v in (s_hist, y_hist, rho))
        if it % REFRESH == REFRESH - 1:  # the kept logits back to exact (their drift: module docstring)
            z = data.logits(theta)
            f, logp = data.value(z, theta)
            g = data.gradient(logp, theta)
        q = g.to(work, copy=True)  # (updated in place below: never ``g`` itself)
        order = [(it - 1 - i) % history for i in range(min(it, history))]
        alphas = []
        for j in order:  # two-loop recursion (slots with rho = 0 hold no pair and contribute nothing)
            a = rho[j] * torch.linalg.vecdot(s_hist[j], q)
            q.addcmul_(y_hist[j], a[..., None], value=-1)
            alphas.append(a)
        r = q.mul_(gamma[..., None].to(work))  # (q is not used after this)
        for j, a in zip(reversed(order), reversed(alphas)):
            b = rho[j] * torch.linalg.vecdot(y_hist[j], r)
            r.addcmul_(s_hist[j], (a - b)[..., None])
        direction = r.to(torch.float64, copy=True).neg_()
        if it == 0:  # first step: steepest descent scaled as torch's L-BFGS does
            direction = -g * torch.clamp(1.0 / g.abs().sum(-1), max=1.0)[..., None]
        slope = (g * direction).sum(-1)
        bad = slope >= 0  # not a descent direction (numerical trouble): restart from -g
        if bad.any():  # (rare: a pass over the working set saved when no problem needs it)
            direction = torch.where(bad[..., None], -g, direction)
            slope = torch.where(bad, -(g * g).sum(-1), slope)
        # Armijo backtracking, per problem: the unit step for all, then halvings for the problems
        # still pending, evaluated as their own block (``_pack``); an accepted trial is written over
        # the unit-step entries (a problem that never accepts does not move: ``moved`` below)
        zd = data.logit_change(direction)
        new_th = theta + direction
        new_z = z + zd
        new_f, new_logp = data.value(new_z, new_th)
        pending = active & ~(new_f <= f + 1e-4 * slope)
        step = torch.ones_like(f)
        for _ in range(39):
            if not pending.any():
                break
            step = torch.where(pending, step * 0.5, step)
            bt, bi = _pack(pending)
            at = (bt[:, None], bi)
            trial = theta[at] + step[at][..., None] * direction[at]
            tz = z[at] + step[at][..., None, None] * zd[at]
            tf, tlogp = data.value(tz, trial, (bt, bi))
            ok = pending[at] & (tf <= f[at] + 1e-4 * step[at] * slope[at])
            rows, cols = ok.nonzero(as_tuple=True)
            hit = (bt[rows], bi[rows, cols])
            new_th[hit], new_f[hit], new_z[hit], new_logp[hit] = (
                trial[rows, cols],
                tf[rows, cols],
                tz[rows, cols],
                tlogp[rows, cols],
            )
            pending[hit] = False
        new_g = data.gradient(new_logp, new_th)
        moved = active & ~pending
        sk, yk = new_th - theta, new_g - g
        sy = (sk * yk).sum(-1)
        good = moved & (sy > 1e-10)
        slot = it % history
        if good.all():  # the usual case: the pairs copied as they are (the same values, one pass fewer)
            s_hist[slot], y_hist[slot] = sk, yk
        else:
            s_hist[slot] = torch.where(good[..., None], sk, 0.0)
            y_hist[slot] = torch.where(good[..., None], yk, 0.0)
        rho[slot] = torch.where(good, 1.0 / sy.clamp_min(1e-300), 0.0)
        gamma = torch.where(good, sy / (yk * yk).sum(-1).clamp_min(1e-300), gamma)
        iters += active.long()
        if moved.all():
            theta, f, g, z = new_th, new_f, new_g, new_z
        else:
            theta = torch.where(moved[..., None], new_th, theta)
            f = torch.where(moved, new_f, f)
            g = torch.where(moved[..., None], new_g, g)
            z = torch.where(moved[..., None, None], new_z, z)
        active = moved & (g.abs().amax(-1) > tol)
    write_out()
    weight = theta_out[..., : k * d].view(t, p, k, d).mT
    return weight, theta_out[..., k * d :], mean, std, iters_out
