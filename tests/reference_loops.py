"""Straightforward loop implementations of SCMM's pairwise quantities, written from the method
description (../shared/reference/scmm-method.md), independent of the vectorised code under test."""

from __future__ import annotations

import math

import numpy as np


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = math.sqrt(float(a @ a)), math.sqrt(float(b @ b))
    if na == 0 or nb == 0:
        return 0.0
    return float(a @ b) / (na * nb)


def soft_weights_loop(x: np.ndarray, sample: list[int], alpha: float, tau_s: float, soft: bool = True) -> np.ndarray:
    n = x.shape[0]
    flat = x.reshape(n, -1).astype(np.float64)
    d = [[-cosine(flat[i], flat[j]) for j in range(n)] for i in range(n)]
    off = min(d[i][j] for i in range(n) for j in range(n) if i != j)
    for i in range(n):
        d[i][i] = off
    w = np.zeros((n, n))
    for j in range(n):
        col = [d[i][j] for i in range(n)]
        lo, hi = min(col), max(col)
        rng = hi - lo if hi > lo else 1.0
        for i in range(n):
            if i == j:
                continue
            if sample[i] == sample[j]:
                w[i, j] = 1.0
            elif soft:
                dhat = (d[i][j] - lo) / rng
                w[i, j] = 2 * alpha / (1 + math.exp(dhat / tau_s))
    return w


def soft_contrastive_loop(z: np.ndarray, w: np.ndarray, temperature: float) -> float:
    n = z.shape[0]
    z = z.astype(np.float64)
    total = 0.0
    for i in range(n):
        s = [float(z[i] @ z[j]) / temperature for j in range(n)]
        m = max(s[j] for j in range(n) if j != i)
        denom = sum(math.exp(s[j] - m) for j in range(n) if j != i)
        for j in range(n):
            if j == i:
                continue
            log_p = s[j] - m - math.log(denom)
            total += w[i, j] * -log_p
    return total / (n * (n - 1))


def aggregate_loop(z: np.ndarray, values: np.ndarray, temperature: float) -> np.ndarray:
    n = z.shape[0]
    z = z.astype(np.float64)
    out = np.zeros((n, values.shape[1]))
    for i in range(n):
        s = [float(z[i] @ z[j]) / temperature for j in range(n)]
        m = max(s[j] for j in range(n) if j != i)
        e = [0.0 if j == i else math.exp(s[j] - m) for j in range(n)]
        tot = sum(e)
        for j in range(n):
            out[i] += e[j] / tot * values[j]
    return out


def nt_xent_loop(z: np.ndarray, sample: list[int], temperature: float, normalize: bool = True) -> float:
    """SimCLR NT-Xent averaged over all (anchor, positive) pairs."""
    n = z.shape[0]
    z = z.astype(np.float64)
    if normalize:
        z = z / np.linalg.norm(z, axis=1, keepdims=True)
    total, pairs = 0.0, 0
    for i in range(n):
        s = [float(z[i] @ z[j]) / temperature for j in range(n)]
        m = max(s[j] for j in range(n) if j != i)
        log_denom = m + math.log(sum(math.exp(s[j] - m) for j in range(n) if j != i))
        for j in range(n):
            if j != i and sample[j] == sample[i]:
                total += log_denom - s[j]
                pairs += 1
    return total / pairs


def time_weights_loop(
    subject: list[int],
    session: list[int],
    trial: list[int],
    window: list[int],
    sample: list[int],
    radius: int,
    decay: float,
) -> np.ndarray:
    """Time soft weights: per ROW metadata (already expanded to views), one pair at a time."""
    n = len(sample)
    w = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            if sample[i] == sample[j]:
                w[i, j] = 1.0
                continue
            same_recording = (subject[i], session[i], trial[i]) == (subject[j], session[j], trial[j])
            dt = abs(window[i] - window[j])
            if same_recording and dt <= radius:
                w[i, j] = math.exp(-decay * dt)
    return w
