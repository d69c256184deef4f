"""In-memory window tables: features (N, C, F) plus one metadata row per window."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

METADATA_FIELDS = ("subject", "session", "trial", "window", "label")

Normalization = Literal["minmax", "zscore", "none", "subject_minmax", "subject_zscore"]
"""``minmax`` / ``zscore``: per feature, statistics of the training split only. ``subject_*``: per
subject and feature, statistics of that subject's own windows, labels unused (the usual label-free
per-subject normalisation of cross-subject EEG; a held-out subject's unlabelled windows are seen)."""


class WindowDataset(Dataset):
    """Windows with metadata; batches come out whole via ``__getitems__`` (no per-item collate).

    Items are dicts: ``x`` float32 (C, F) and the integer metadata fields.
    """

    def __init__(self, features: np.ndarray | Tensor, metadata: dict[str, np.ndarray]) -> None:
        self.x = torch.as_tensor(np.ascontiguousarray(features), dtype=torch.float32)
        n = self.x.shape[0]
        self.meta = {}
        for key in METADATA_FIELDS:
            values = np.asarray(metadata[key])
            if values.shape != (n,):
                raise ValueError(f"metadata field {key!r} has shape {values.shape}, expected ({n},)")
            self.meta[key] = torch.as_tensor(values, dtype=torch.long)

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return {"x": self.x[index], **{k: v[index] for k, v in self.meta.items()}}

    def __getitems__(self, indices: list[int]) -> dict[str, Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return {"x": self.x[idx], **{k: v[idx] for k, v in self.meta.items()}}


def collate_batch(batch: dict[str, Tensor] | list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Identity for whole batches from ``__getitems__``; stacks item lists otherwise."""
    if isinstance(batch, dict):
        return batch
    return {k: torch.stack([item[k] for item in batch]) for k in batch[0]}


class EpochSeededRandomSampler(Sampler[int]):
    """Random permutation drawn from ``(seed, epoch)``: the same order after a resume.

    Lightning calls ``set_epoch`` at the start of every epoch.
    """

    def __init__(self, num_samples: int, seed: int = 0) -> None:
        self.num_samples = num_samples
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.num_samples, generator=gen).tolist())


def make_loader(
    dataset: WindowDataset, batch_size: int, shuffle: bool, drop_last: bool, num_workers: int, seed: int
) -> DataLoader:
    sampler = EpochSeededRandomSampler(len(dataset), seed) if shuffle else None
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=drop_last,
        num_workers=num_workers,
        collate_fn=collate_batch,
        persistent_workers=num_workers > 0,
    )


def normalize(features: np.ndarray, subject: np.ndarray, train: np.ndarray, kind: Normalization) -> np.ndarray:
    """Apply ``kind``: fitted on the training rows, or per subject on each subject's rows."""
    if kind.startswith("subject_"):
        out = np.empty_like(features)
        for s in np.unique(subject):
            rows = subject == s
            shift, scale = fit_normalization(features[rows], kind)
            out[rows] = (features[rows] - shift) / scale
        return out
    shift, scale = fit_normalization(features[train], kind)  # training split only
    return (features - shift) / scale


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
