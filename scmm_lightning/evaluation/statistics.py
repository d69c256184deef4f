"""Paired comparisons of two methods over the same units (target subjects, or subject x seed), and of
two spreads over the same seeds."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0


def paired_comparison(a: np.ndarray, b: np.ndarray) -> dict[str, float | int]:
    """``a`` vs ``b`` paired unit by unit: the mean difference ``mean(a - b)``, its 95% percentile
    bootstrap CI (10,000 resamples of the units, fixed seed) and the two-sided Wilcoxon signed-rank
    p-value (scipy, ``method="auto"``: exact for n <= 50 without ties or zeros; 1.0 when every
    difference is 0). Pairs with a NaN on either side are left out."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    keep = ~(np.isnan(a) | np.isnan(b))
    d = a[keep] - b[keep]
    n = len(d)
    if n == 0:
        return {"n": 0, "mean_difference": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p_value": math.nan}
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    means = d[rng.integers(0, n, size=(BOOTSTRAP_RESAMPLES, n))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    p = 1.0 if np.all(d == 0) else float(stats.wilcoxon(d, method="auto").pvalue)
    return {"n": n, "mean_difference": float(d.mean()), "ci_low": float(low), "ci_high": float(high), "p_value": p}


def paired_spread_comparison(a: np.ndarray, b: np.ndarray) -> dict[str, float | int]:
    """Is ``a``'s spread different from ``b``'s, the two measured on the same units (e.g. two
    protocols' figures per seed, on the same encoders)? The ratio of standard deviations
    ``std(a) / std(b)`` (ddof 1) and the two-sided Pitman-Morgan p-value of equal variances:
    var(a) = var(b) exactly when cov(a + b, a - b) = 0, so the test is Pearson's correlation test of
    a + b against a - b (t = r sqrt(n - 2) / sqrt(1 - r^2), n - 2 degrees of freedom). Pairing
    matters: two spreads over the same seeds move together, and an F test for independent samples
    would ignore it. With 6 seeds and uncorrelated sides a std ratio must pass ~3 for p < 0.05 (less
    when the sides move together). Pairs with a NaN are left out; fewer than 3 pairs, or a constant
    side, give NaN; sides that differ by a constant shift or add up to a constant (to rounding) have
    equal variances: p = 1."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    n = len(a)
    out: dict[str, float | int] = {"n": n, "std_ratio": math.nan, "p_value": math.nan}
    if n < 3 or np.std(b) == 0 or np.std(a) == 0:
        return out
    out["std_ratio"] = float(np.std(a, ddof=1) / np.std(b, ddof=1))
    total, diff = a + b, a - b
    scale = np.std(a) + np.std(b)
    if min(np.std(total), np.std(diff)) <= 1e-9 * scale:  # a = c - b or a = b + c: pearsonr's input constant
        out["p_value"] = 1.0
        return out
    out["p_value"] = float(stats.pearsonr(total, diff).pvalue)
    return out


def compare_methods(
    rows: list[dict], pairs: list[tuple[str, str]], metrics: tuple[str, ...], unit: tuple[str, ...] = ("subject",)
) -> list[dict]:
    """For each (a, b) in ``pairs`` and each metric: :func:`paired_comparison` over the ``unit``
    keys (e.g. subject, or subject and seed) both methods have. Pairs naming an absent method are
    skipped."""
    methods = {r["method"] for r in rows}
    out = []
    for a, b in pairs:
        if a not in methods or b not in methods:
            continue
        va = {tuple(r[k] for k in unit): r for r in rows if r["method"] == a}
        vb = {tuple(r[k] for k in unit): r for r in rows if r["method"] == b}
        keys = sorted(set(va) & set(vb))
        for metric in metrics:
            x = np.array([np.nan if va[k].get(metric) is None else va[k][metric] for k in keys], float)
            y = np.array([np.nan if vb[k].get(metric) is None else vb[k][metric] for k in keys], float)
            out.append({"a": a, "b": b, "metric": metric, **paired_comparison(x, y)})
    return out
