"""What every window datamodule does once its corpus is in memory: select, split, normalise, serve."""

from __future__ import annotations

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from .channels import select_channels
from .splits import SplitConfig
from .windows import Normalization, WindowDataset, make_loader, normalize


class WindowDataModule(L.LightningDataModule):
    """Base of the corpus datamodules.

    Subclasses implement :meth:`load_windows` and set ``all_channel_names``, ``all_class_names``
    and ``corpus_name``. After ``setup``: ``train_set`` and ``test_set`` (None when the split has no
    test part), normalised with statistics of the training split only.
    """

    corpus_name = ""
    all_channel_names: tuple[str, ...] = ()
    all_class_names: tuple[str, ...] = ()

    def __init__(
        self,
        subjects: list[int] | None,
        sessions: list[int] | None,
        channels: list[str] | None,
        label_map: dict[int, int] | None,
        split: SplitConfig | None,
        normalization: Normalization,
        batch_size: int,
        num_workers: int,
        shuffle_seed: int,
        num_bands: int,
    ) -> None:
        super().__init__()
        self.subjects = subjects
        self.sessions = sessions
        self.channels = list(channels) if channels else None
        self.label_map = {int(k): int(v) for k, v in label_map.items()} if label_map else None
        self.split = split or SplitConfig(kind="none")
        self.normalization = normalization
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.shuffle_seed = shuffle_seed
        self._num_bands = num_bands
        self.train_set: WindowDataset | None = None
        self.test_set: WindowDataset | None = None

    # -- known before setup, so the CLI can link them into the model -------------------------------
    @property
    def channel_names(self) -> tuple[str, ...]:
        return tuple(self.channels) if self.channels else tuple(self.all_channel_names)

    @property
    def num_channels(self) -> int:
        return len(self.channel_names)

    @property
    def num_bands(self) -> int:
        return self._num_bands

    @property
    def num_classes(self) -> int:
        return len(set(self.label_map.values())) if self.label_map else len(self.all_class_names)

    @property
    def class_names(self) -> tuple[str, ...]:
        """Names of the classes after ``label_map`` (merged classes joined by '+')."""
        if not self.label_map:
            return tuple(self.all_class_names)
        names: dict[int, list[str]] = {}
        for own, new in sorted(self.label_map.items()):
            names.setdefault(new, []).append(self.all_class_names[own])
        return tuple("+".join(names[k]) for k in sorted(names))

    def load_windows(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """All windows of the corpus: features (N, C_all, F) and metadata arrays."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        features, meta = self.load_windows()
        keep = np.ones(len(features), dtype=bool)
        if self.subjects is not None:
            keep &= np.isin(meta["subject"], self.subjects)
        if self.sessions is not None:
            keep &= np.isin(meta["session"], self.sessions)
        labels = np.asarray(meta["label"]).copy()
        if self.label_map is not None:
            unknown = set(self.label_map) - set(range(len(self.all_class_names)))
            if unknown:
                raise ValueError(
                    f"label_map keys {sorted(unknown)} are not {self.corpus_name} classes "
                    f"{dict(enumerate(self.all_class_names))}"
                )
            keep &= np.isin(labels, list(self.label_map))
            labels = np.array([self.label_map.get(int(v), -1) for v in labels], dtype=np.int64)
        if not keep.any():
            raise ValueError(
                f"no {self.corpus_name} windows left after selecting subjects={self.subjects}, "
                f"sessions={self.sessions}, label_map={self.label_map}"
            )
        features = features[keep]
        meta = {k: np.asarray(v)[keep] for k, v in meta.items()}
        meta["label"] = labels[keep]
        if self.channels:
            features = features[:, select_channels(self.all_channel_names, self.channels)]
        train, test = self.split.masks(meta)
        if not train.any():
            raise ValueError(f"{self.corpus_name}: the split {self.split} leaves no training windows")
        features = normalize(features, meta["subject"], train, self.normalization)
        self.train_set = WindowDataset(features[train], {k: v[train] for k, v in meta.items()})
        self.test_set = WindowDataset(features[test], {k: v[test] for k, v in meta.items()}) if test.any() else None

    def train_dataloader(self) -> DataLoader:
        if len(self.train_set) < self.batch_size:
            raise ValueError(
                f"the {self.corpus_name} training split has {len(self.train_set)} windows, fewer than "
                f"batch_size={self.batch_size}; lower data batch_size"
            )
        return make_loader(self.train_set, self.batch_size, True, True, self.num_workers, self.shuffle_seed)

    def test_dataloader(self) -> DataLoader:
        if self.test_set is None:
            raise ValueError(f"the {self.corpus_name} split {self.split.kind!r} has no test windows")
        return make_loader(self.test_set, self.batch_size, False, False, self.num_workers, 0)
