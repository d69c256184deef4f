"""LightningDataModules over the real corpora: cache in ``prepare_data``, select/split/normalise in ``setup``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from .cache import CorpusTable, build_cache, cache_path, load_cache
from .channels import select_channels
from .corpora import CorpusError, CorpusReader, DeapReader, RawDEConfig, SeedIVReader, SeedReader
from .windows import (
    Normalization,
    WindowDataset,
    cross_session_split,
    fit_normalization,
    loso_split,
    make_loader,
    trial_split,
)


@dataclass
class SplitConfig:
    """How windows are split into train and test, as a pure function of the metadata.

    ``trial``: per subject and session the first ``train_trials`` trials train, the rest test
    (SEED's 9/6); ``loso``: ``test_subject`` tests, the others train; ``cross_session``:
    ``train_sessions`` vs ``test_sessions``; ``none``: everything trains (pre-training).
    """

    kind: Literal["trial", "loso", "cross_session", "none"] = "trial"
    train_trials: int = 9
    test_subject: int | None = None
    train_sessions: list[int] = field(default_factory=lambda: [1, 2])
    test_sessions: list[int] = field(default_factory=lambda: [3])

    def masks(self, metadata: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        if self.kind == "trial":
            return trial_split(metadata, self.train_trials)
        if self.kind == "loso":
            if self.test_subject is None:
                raise ValueError("split.kind=loso needs split.test_subject")
            return loso_split(metadata, self.test_subject)
        if self.kind == "cross_session":
            return cross_session_split(metadata, self.train_sessions, self.test_sessions)
        if self.kind == "none":
            n = len(metadata["subject"])
            return np.ones(n, bool), np.zeros(n, bool)
        raise ValueError(f"split.kind {self.kind!r} unknown; choose trial, loso, cross_session or none")


def default_root(folder: str) -> Path:
    base = os.environ.get("SCMM_DATA_ROOT")
    if not base:
        raise CorpusError(
            f"no corpus root given: set data.init_args.root, or SCMM_DATA_ROOT so that $SCMM_DATA_ROOT/{folder} "
            "holds the corpus"
        )
    return Path(base) / folder


class EEGCorpusDataModule(L.LightningDataModule):
    """Shared machinery; subclasses say which reader builds the cache."""

    folder = ""
    channel_count = 0
    class_count = 0

    def __init__(
        self,
        root: str | None,
        cache_dir: str | None,
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
        self.root = Path(root) if root else None
        self.cache_dir = cache_dir
        self.subjects = subjects
        self.sessions = sessions
        self.channels = channels
        self.label_map = {int(k): int(v) for k, v in label_map.items()} if label_map else None
        self.split = split or SplitConfig()
        self.normalization = normalization
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.shuffle_seed = shuffle_seed
        self._num_bands = num_bands
        self.table: CorpusTable | None = None
        self.train_set: WindowDataset | None = None
        self.test_set: WindowDataset | None = None

    # -- shape known before setup, so the CLI can link it into the model --------------------------
    @property
    def num_channels(self) -> int:
        return len(self.channels) if self.channels else self.channel_count

    @property
    def num_bands(self) -> int:
        return self._num_bands

    @property
    def num_classes(self) -> int:
        return len(set(self.label_map.values())) if self.label_map else self.class_count

    def make_reader(self, root: Path) -> CorpusReader:
        raise NotImplementedError

    def reader(self) -> CorpusReader:
        return self.make_reader(self.root or default_root(self.folder))

    def prepare_data(self) -> None:
        build_cache(self.reader(), self.cache_dir)

    def load_table(self) -> CorpusTable:
        reader = self.reader()
        path = cache_path(reader, self.cache_dir)
        if not path.exists():
            path = build_cache(reader, self.cache_dir)
        return load_cache(path)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        table = self.load_table()
        meta = table.metadata
        keep = np.ones(len(table.features), dtype=bool)
        if self.subjects is not None:
            keep &= np.isin(meta["subject"], self.subjects)
        if self.sessions is not None:
            keep &= np.isin(meta["session"], self.sessions)
        labels = meta["label"].copy()
        if self.label_map is not None:
            unknown = set(self.label_map) - set(range(len(table.class_names)))
            if unknown:
                raise ValueError(
                    f"label_map keys {sorted(unknown)} are not {table.corpus} classes "
                    f"{dict(enumerate(table.class_names))}"
                )
            keep &= np.isin(labels, list(self.label_map))
            labels = np.array([self.label_map.get(int(v), -1) for v in labels], dtype=np.int64)
        if not keep.any():
            raise ValueError(
                f"no {table.corpus} windows left after selecting subjects={self.subjects}, "
                f"sessions={self.sessions}, label_map={self.label_map}"
            )
        features = table.features[keep]
        meta = {k: v[keep] for k, v in meta.items()}
        meta["label"] = labels[keep]
        if self.channels:
            features = features[:, select_channels(table.channel_names, self.channels)]
        train, test = self.split.masks(meta)
        shift, scale = fit_normalization(features[train], self.normalization)  # training split only
        features = (features - shift) / scale
        self.table = table
        self.train_set = WindowDataset(features[train], {k: v[train] for k, v in meta.items()})
        self.test_set = WindowDataset(features[test], {k: v[test] for k, v in meta.items()}) if test.any() else None

    def train_dataloader(self) -> DataLoader:
        if len(self.train_set) < self.batch_size:
            raise ValueError(
                f"the training split has {len(self.train_set)} windows, fewer than "
                f"batch_size={self.batch_size}; lower data.init_args.batch_size"
            )
        return make_loader(self.train_set, self.batch_size, True, True, self.num_workers, self.shuffle_seed)

    def test_dataloader(self) -> DataLoader:
        if self.test_set is None:
            raise ValueError("this split has no test windows (split.kind=none)")
        return make_loader(self.test_set, self.batch_size, False, False, self.num_workers, 0)


class SeedDataModule(EEGCorpusDataModule):
    """SEED (62 electrodes; classes negative / neutral / positive).

    Args:
        root: corpus root (default ``$SCMM_DATA_ROOT/SEED``).
        cache_dir: feature cache (default ``$SCMM_CACHE_DIR`` or ``~/.cache/scmm_lightning``).
        source: ``features`` (ExtractedFeatures/) or ``raw`` (Preprocessed_EEG/ -> DE here).
        feature_key: ExtractedFeatures key family (``de_LDS``, ``de_movingAve``, ...).
        raw: DE extraction settings for ``source=raw``.
        subjects: subject ids to keep (default all).
        sessions: sessions 1..3 to keep (default all).
        channels: electrode names to keep, in this order (e.g. DEAP's 32); default all 62.
        label_map: own class index -> new index; unmapped classes are dropped.
        split: train/test split.
        normalization: fitted on the training split only.
        batch_size: training batch size.
        num_workers: DataLoader workers.
        shuffle_seed: seed of the epoch-wise training order.
    """

    folder = "SEED"
    channel_count = 62
    class_count = 3

    def __init__(
        self,
        root: str | None = None,
        cache_dir: str | None = None,
        source: Literal["features", "raw"] = "features",
        feature_key: str = "de_LDS",
        raw: RawDEConfig | None = None,
        subjects: list[int] | None = None,
        sessions: list[int] | None = None,
        channels: list[str] | None = None,
        label_map: dict[int, int] | None = None,
        split: SplitConfig | None = None,
        normalization: Normalization = "minmax",
        batch_size: int = 256,
        num_workers: int = 0,
        shuffle_seed: int = 0,
    ) -> None:
        self.source, self.feature_key, self.raw = source, feature_key, raw or RawDEConfig()
        super().__init__(
            root,
            cache_dir,
            subjects,
            sessions,
            channels,
            label_map,
            split,
            normalization,
            batch_size,
            num_workers,
            shuffle_seed,
            len(self.raw.bands) if source == "raw" else 5,
        )

    def make_reader(self, root: Path) -> CorpusReader:
        return SeedReader(root, self.source, self.feature_key, self.raw)


class SeedIVDataModule(SeedDataModule):
    """SEED-IV (62 electrodes; classes neutral / sad / fear / happy); arguments as SeedDataModule,
    ``root`` defaulting to ``$SCMM_DATA_ROOT/SEED_IV``."""

    folder = "SEED_IV"
    class_count = 4

    def make_reader(self, root: Path) -> CorpusReader:
        return SeedIVReader(root, self.source, self.feature_key, self.raw)


class DeapDataModule(EEGCorpusDataModule):
    """DEAP (32 electrodes; binary low / high on one rating dimension).

    Args:
        root: corpus root (default ``$SCMM_DATA_ROOT/DEAP``).
        cache_dir: feature cache.
        label_dimension: valence, arousal, dominance or liking.
        threshold: rating > threshold is class 1 (high).
        baseline: ``subtract`` the mean DE of the 3 s pre-trial baseline, or ``none``.
        raw: DE extraction settings.
        subjects: subject ids (1..32) to keep.
        sessions: unused by DEAP's single session; kept for symmetry.
        channels: electrode names to keep, in this order.
        label_map: own class index -> new index.
        split: train/test split.
        normalization: fitted on the training split only.
        batch_size: training batch size.
        num_workers: DataLoader workers.
        shuffle_seed: seed of the epoch-wise training order.
    """

    folder = "DEAP"
    channel_count = 32
    class_count = 2

    def __init__(
        self,
        root: str | None = None,
        cache_dir: str | None = None,
        label_dimension: Literal["valence", "arousal", "dominance", "liking"] = "valence",
        threshold: float = 5.0,
        baseline: Literal["none", "subtract"] = "subtract",
        raw: RawDEConfig | None = None,
        subjects: list[int] | None = None,
        sessions: list[int] | None = None,
        channels: list[str] | None = None,
        label_map: dict[int, int] | None = None,
        split: SplitConfig | None = None,
        normalization: Normalization = "minmax",
        batch_size: int = 256,
        num_workers: int = 0,
        shuffle_seed: int = 0,
    ) -> None:
        self.label_dimension, self.threshold, self.baseline = label_dimension, threshold, baseline
        self.raw = raw or RawDEConfig()
        super().__init__(
            root,
            cache_dir,
            subjects,
            sessions,
            channels,
            label_map,
            split,
            normalization,
            batch_size,
            num_workers,
            shuffle_seed,
            len(self.raw.bands),
        )

    def make_reader(self, root: Path) -> CorpusReader:
        return DeapReader(root, self.label_dimension, self.threshold, self.baseline, self.raw)
