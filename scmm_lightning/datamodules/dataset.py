"""Windows as a torch Dataset (features (N, C, F) plus one metadata row per window) and their loaders."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from ..corpora.cache import METADATA


class WindowDataset(Dataset):
    """Windows with metadata; batches come out whole via ``__getitems__`` (no per-item collate).

    Items are dicts: ``x`` float32 (C, F) and the integer metadata fields.
    """

    def __init__(self, features: np.ndarray | Tensor, metadata: dict[str, np.ndarray]) -> None:
        self.x = torch.as_tensor(np.ascontiguousarray(features), dtype=torch.float32)
        n = self.x.shape[0]
        self.meta = {}
        for key in METADATA:
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


def training_loader(dataset: WindowDataset, batch_size: int, num_workers: int, seed: int, owner: str) -> DataLoader:
    """The shuffled, last-batch-dropping training loader; ``owner`` names the data in the error
    raised when there is not one whole batch."""
    from ..corpora.base import CorpusError

    if len(dataset) < batch_size:
        raise CorpusError(
            f"{owner} has {len(dataset)} training windows, fewer than batch_size={batch_size}; lower data batch_size"
        )
    if batch_size < 2:
        warnings.warn(
            f"{owner}: batch_size={batch_size} gives a contrastive loss no other window to compare with (it is 0 at "
            "every step); use 2 or more",
            stacklevel=2,
        )
    return make_loader(dataset, batch_size, True, True, num_workers, seed)
