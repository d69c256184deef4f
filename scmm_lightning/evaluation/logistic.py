"""Many multinomial logistic regressions solved at once: the linear probe's solver.

Each problem ``p`` has its own rows (padded to one length, padding weighted 0), its own feature
standardisation (done by the caller) and its own L2 penalty, and minimises

    f_p(W, b) = sum_i w_i * CE(x_i W + b, y_i) / sum_i w_i  +  l2_p * ||W||_F^2

(``w_i`` = 1, or n / (K * n_class) for class-balanced probes: the weighted mean cross-entropy of
``F.cross_entropy(weight=...)``; the bias is not penalised). So ``l2`` is on the scale of a mean
loss: with standardised features, ``l2 = 1 / (2 C n)`` is scikit-learn's ``C`` for ``n`` rows.

The problems are solved together by L-BFGS (history 10) with an Armijo backtracking line search,
both vectorised over problems: every problem takes its own steps, keeps its own curvature pairs and
stops on its own (gradient max-norm below ``tol``), so solving one problem alone (``P = 1``, the
per-problem loop) gives the same iterates. Float64 throughout: the problems are strongly convex, and
the solution (not an iteration budget) is what is compared between engines and with scikit-learn.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _objective(theta: Tensor, x: Tensor, y1h: Tensor, w: Tensor, l2: Tensor, groups: int) -> tuple[Tensor, Tensor]:
    """theta (S*G, D*K + K) -> objective (S*G,) and gradient (S*G, D*K + K)."""
    s, n, d = x.shape
    k = y1h.shape[-1]
    t = theta.view(s, groups, d * k + k)
    weight = t[..., : d * k].reshape(s, groups, d, k)
    bias = t[..., d * k :]
    logits = torch.einsum("snd,sgdk->sgnk", x, weight) + bias[:, :, None, :]
    logp = torch.log_softmax(logits, dim=-1)
    norm = w.sum(1).clamp_min(1e-300)  # (s,)
    ce = -(logp * y1h[:, None]).sum(-1)  # (s, g, n)
    penalty = l2 * weight.pow(2).sum((2, 3))
    f = (ce * w[:, None]).sum(-1) / norm[:, None] + penalty
    # d CE / d logits = softmax - onehot, weighted by w_i / sum w
    dlogits = (logp.exp() - y1h[:, None]) * (w / norm[:, None])[:, None, :, None]
    g_weight = torch.einsum("snd,sgnk->sgdk", x, dlogits) + 2 * l2[..., None, None] * weight
    g_bias = dlogits.sum(2)
    grad = torch.cat([g_weight.reshape(s, groups, d * k), g_bias], dim=-1)
    return f.reshape(-1), grad.reshape(s * groups, -1)


def solve_logistic(
    x: Tensor,
    y: Tensor,
    w: Tensor,
    l2: Tensor,
    num_classes: int,
    max_iter: int = 200,
    tol: float = 1e-4,
    history: int = 10,
) -> tuple[Tensor, Tensor, Tensor]:
    """Solve S x G problems: ``x`` (S, n, D) standardised rows, ``y`` (S, n) labels, ``w`` (S, n)
    row weights (0 = padding), ``l2`` (S, G) penalties (G problems share each row set). ``tol`` on
    the gradient's max-norm (of a MEAN loss: 1e-4 moves no prediction in our checks) and
    ``max_iter``: the weakly penalised problems on a random CNN's correlated features are
    ill-conditioned (on the DEAP fixture, with an ad-hoc script not kept in the repo: 130
    iterations on average, up to 500, at tol 1e-5; 41 s of a 49 s probe call, 20 s at these
    defaults), so the defaults trade the last digits for time. Returns
    ``weight`` (S, G, D, K), ``bias`` (S, G, K) and the iterations each problem took (S, G)."""
    x, w, l2 = x.double(), w.double(), l2.double()
    s, n, d = x.shape
    groups, k = l2.shape[1], num_classes
    y1h = torch.nn.functional.one_hot(y.clamp_min(0), k).double() * (w > 0)[..., None]
    dim = d * k + k
    opts = dict(dtype=torch.float64, device=x.device)
    theta_out = torch.zeros(s, groups, dim, **opts)
    iters_out = torch.zeros(s, groups, dtype=torch.long, device=x.device)
    # the working sets: every row set still running, with its state. A solved set leaves it (its
    # state written out) only when a quarter of the working sets are solved: compacting is a copy
    # of their rows, and copying at every iteration took ~30% of a solve (DEAP-shaped probe call)
    ids = torch.arange(s, device=x.device)
    theta = torch.zeros(s, groups, dim, **opts)
    f, g = _objective(theta.view(-1, dim), x, y1h, w, l2, groups)
    f, g = f.view(s, groups), g.view(s, groups, dim)
    s_hist = torch.zeros(history, s, groups, dim, **opts)
    y_hist = torch.zeros_like(s_hist)
    rho = torch.zeros(history, s, groups, **opts)
    gamma = torch.ones(s, groups, **opts)
    active = g.abs().amax(-1) > tol
    iters = torch.zeros(s, groups, dtype=torch.long, device=x.device)
    for it in range(max_iter):
        live = active.any(1)
        n_live = int(live.sum())
        if n_live == 0:
            break
        if n_live <= 0.75 * len(ids):
            done = ~live
            theta_out[ids[done]], iters_out[ids[done]] = theta[done], iters[done]
            keep = live.nonzero().squeeze(1)
            ids, x, y1h, w, l2 = ids[keep], x[keep], y1h[keep], w[keep], l2[keep]
            theta, f, g, active, iters, gamma = theta[keep], f[keep], g[keep], active[keep], iters[keep], gamma[keep]
            s_hist, y_hist, rho = s_hist[:, keep], y_hist[:, keep], rho[:, keep]
        q = g.clone()
        order = [(it - 1 - i) % history for i in range(min(it, history))]
        alphas = []
        for j in order:  # two-loop recursion (slots with rho = 0 hold no pair and contribute nothing)
            a = rho[j] * torch.linalg.vecdot(s_hist[j], q)
            q.addcmul_(y_hist[j], a[..., None], value=-1)
            alphas.append(a)
        r = q * gamma[..., None]
        for j, a in zip(reversed(order), reversed(alphas)):
            b = rho[j] * torch.linalg.vecdot(y_hist[j], r)
            r.addcmul_(s_hist[j], (a - b)[..., None])
        direction = -r
        if it == 0:  # first step: steepest descent scaled as torch's L-BFGS does
            direction = -g * torch.clamp(1.0 / g.abs().sum(-1), max=1.0)[..., None]
        slope = (g * direction).sum(-1)
        bad = slope >= 0  # not a descent direction (numerical trouble): restart from -g
        direction = torch.where(bad[..., None], -g, direction)
        slope = torch.where(bad, -(g * g).sum(-1), slope)
        step = torch.ones_like(f)
        pending = active.clone()
        new_th, new_f, new_g = theta, f, g  # a problem's entries count only once it moved (below)
        for attempt in range(40):  # Armijo backtracking, per problem
            sets = pending.any(1)
            n_sets = int(sets.sum())
            trial = theta + step[..., None] * direction
            if n_sets <= len(ids) // 2:  # a few problems still backtracking: evaluate their sets only
                pick = sets.nonzero().squeeze(1)
                tf_p, tg_p = _objective(trial[pick].view(-1, dim), x[pick], y1h[pick], w[pick], l2[pick], groups)
                tf, tg = f.clone(), g.clone()
                tf[pick], tg[pick] = tf_p.view(-1, groups), tg_p.view(-1, groups, dim)
            else:
                tf, tg = _objective(trial.view(-1, dim), x, y1h, w, l2, groups)
                tf, tg = tf.view_as(f), tg.view_as(g)
            ok = pending & (tf <= f + 1e-4 * step * slope)
            if attempt == 0 and torch.equal(ok, pending):  # the usual case: every unit step accepted
                new_th, new_f, new_g = trial, tf, tg
                pending = torch.zeros_like(pending)
                break
            new_th = torch.where(ok[..., None], trial, new_th)
            new_f = torch.where(ok, tf, new_f)
            new_g = torch.where(ok[..., None], tg, new_g)
            pending &= ~ok
            if not pending.any():
                break
            step = torch.where(pending, step * 0.5, step)
        moved = active & ~pending
        sk, yk = new_th - theta, new_g - g
        sy = (sk * yk).sum(-1)
        good = moved & (sy > 1e-10)
        slot = it % history
        s_hist[slot] = torch.where(good[..., None], sk, 0.0)
        y_hist[slot] = torch.where(good[..., None], yk, 0.0)
        rho[slot] = torch.where(good, 1.0 / sy.clamp_min(1e-300), 0.0)
        gamma = torch.where(good, sy / (yk * yk).sum(-1).clamp_min(1e-300), gamma)
        iters += active.long()
        theta = torch.where(moved[..., None], new_th, theta)
        f = torch.where(moved, new_f, f)
        g = torch.where(moved[..., None], new_g, g)
        active = moved & (g.abs().amax(-1) > tol)
    theta_out[ids], iters_out[ids] = theta, iters
    return theta_out[..., : d * k].reshape(s, groups, d, k), theta_out[..., d * k :], iters_out
