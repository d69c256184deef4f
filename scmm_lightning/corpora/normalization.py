"""Feature normalisation fitted on the training split only (or per subject, labels unused)."""

from __future__ import annotations

from typing import Literal

import numpy as np

Normalization = Literal["minmax", "zscore", "none", "subject_minmax", "subject_zscore"]
"""``minmax`` / ``zscore``: per feature, statistics of the training split only. ``subject_*``: per
subject and feature, statistics of that subject's own windows, labels unused (the usual label-free
per-subject normalisation of cross-subject EEG; a held-out subject's unlabelled windows are seen)."""


def normalize(
    features: np.ndarray, subject: np.ndarray, train: np.ndarray, kind: Normalization
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """Apply ``kind``: fitted on the training rows, or per subject on each subject's rows.

    Returns the normalised features and the ``(shift, scale)`` fitted on the training rows (what an
    exported encoder records), or ``None`` for the ``subject_*`` kinds, whose statistics belong to
    each subject's own windows."""
    if kind.startswith("subject_"):
        out = np.empty_like(features)
        for s in np.unique(subject):
            rows = subject == s
            shift, scale = fit_normalization(features[rows], kind)
            out[rows] = (features[rows] - shift) / scale
        return out, None
    shift, scale = fit_normalization(features[train], kind)  # training split only
    return (features - shift) / scale, (shift, scale)


def fit_normalization(features: np.ndarray, kind: Normalization) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature ``(shift, scale)`` fitted on ``features`` (the training split only);
    apply as ``(x - shift) / scale``. Constant features get scale 1."""
    kind = kind.removeprefix("subject_")  # type: ignore[assignment]
    if kind == "none":
        return np.zeros(features.shape[1:], np.float32), np.ones(features.shape[1:], np.float32)
    if kind == "minmax":
        shift = features.min(axis=0)
        scale = features.max(axis=0) - shift
    elif kind == "zscore":
        shift = features.mean(axis=0)
        scale = features.std(axis=0)
    else:
        raise ValueError(
            f"normalization {kind!r} unknown; choose minmax, zscore, none, subject_minmax or subject_zscore"
        )
    scale = np.where(scale > 0, scale, 1.0)
    return shift.astype(np.float32), scale.astype(np.float32)
