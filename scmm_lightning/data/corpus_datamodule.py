"""LightningDataModules over the real corpora: cache in ``prepare_data``, select/split/normalise in ``setup``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np

from .base import WindowDataModule
from .cache import CorpusTable, build_cache, cache_path, load_cache
from .corpora import CorpusError, CorpusReader, DeapReader, RawDEConfig, RecordingsReader, SeedIVReader, SeedReader
from .splits import SplitConfig
from .windows import Normalization


def default_root(folder: str) -> Path:
    base = os.environ.get("SCMM_DATA_ROOT")
    if not base:
        raise CorpusError(
            f"no corpus root given: set data.init_args.root, or SCMM_DATA_ROOT so that $SCMM_DATA_ROOT/{folder} "
            "holds the corpus"
        )
    return Path(base) / folder


class EEGCorpusDataModule(WindowDataModule):
    """A real corpus read through its reader and the feature cache; subclasses pick the reader."""

    folder = ""

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
        super().__init__(
            subjects,
            sessions,
            channels,
            label_map,
            split,
            normalization,
            batch_size,
            num_workers,
            shuffle_seed,
            num_bands,
        )
        self.root = Path(root) if root else None
        self.cache_dir = cache_dir
        self.table: CorpusTable | None = None

    def make_reader(self, root: Path) -> CorpusReader:
        raise NotImplementedError

    def reader(self) -> CorpusReader:
        return self.make_reader(self.root or default_root(self.folder))

    def prepare_data(self) -> None:
        build_cache(self.reader(), self.cache_dir)

    def load_windows(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        reader = self.reader()
        path = cache_path(reader, self.cache_dir)
        if not path.exists():
            path = build_cache(reader, self.cache_dir)
        self.table = load_cache(path)
        return self.table.features, self.table.metadata


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
        split: train/test split (default: none, everything trains).
        normalization: ``minmax`` / ``zscore`` (training split only), ``subject_*`` (per subject) or ``none``.
        batch_size: training batch size.
        num_workers: DataLoader workers.
        shuffle_seed: seed of the epoch-wise training order.
    """

    folder = "SEED"
    corpus_name = "SEED"
    all_channel_names = SeedReader.channel_names
    all_class_names = SeedReader.class_names

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
    corpus_name = "SEED-IV"
    all_class_names = SeedIVReader.class_names

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
        split: train/test split (default: none, everything trains).
        normalization: ``minmax`` / ``zscore`` (training split only), ``subject_*`` (per subject) or ``none``.
        batch_size: training batch size.
        num_workers: DataLoader workers.
        shuffle_seed: seed of the epoch-wise training order.
    """

    folder = "DEAP"
    corpus_name = "DEAP"
    all_channel_names = DeapReader.channel_names
    all_class_names = DeapReader.class_names

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


class RecordingsDataModule(EEGCorpusDataModule):
    """Your own recordings: EEG files MNE reads plus a table (see :class:`RecordingsReader`).

    Electrodes and classes come from the files and the table, so they are known (and checked) as
    soon as the datamodule is built; the montage then links into the model like any corpus's.

    Args:
        root: directory the table's ``file`` column is relative to (default ``$SCMM_DATA_ROOT/RECORDINGS``).
        table: the recordings table (CSV/TSV); relative paths are looked up in the working directory, then ``root``.
        name: corpus name (logs, cache file names).
        label_column: table column holding the label.
        class_names: labels in class-index order (default: the table's labels, sorted).
        montage: electrodes to read, in this order (default: those every recording has).
        drop_channels: more non-EEG channel names to drop.
        channel_aliases: file channel name -> 10-10 name.
        resample: resample to this rate (Hz) before DE (default: each file's own rate).
        raw: DE extraction settings.
        cache_dir: feature cache.
        subjects: subject ids to keep (default all).
        sessions: sessions to keep (default all).
        channels: electrodes to keep after reading, in this order (e.g. a montage shared with SEED).
        label_map: own class index -> new index; unmapped classes are dropped.
        split: train/test split (``leave_subjects_out`` for cross-subject evaluation).
        normalization: ``minmax`` / ``zscore`` (training split only), ``subject_*`` (per subject) or ``none``.
        batch_size: training batch size.
        num_workers: DataLoader workers.
        shuffle_seed: seed of the epoch-wise training order.
    """

    folder = "RECORDINGS"

    def __init__(
        self,
        root: str | None = None,
        table: str = "recordings.csv",
        name: str = "recordings",
        label_column: str = "label",
        class_names: list[str] | None = None,
        montage: list[str] | None = None,
        drop_channels: list[str] | None = None,
        channel_aliases: dict[str, str] | None = None,
        resample: float | None = None,
        raw: RawDEConfig | None = None,
        cache_dir: str | None = None,
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
        self.table_path, self.name, self.label_column = table, name, label_column
        self.reader_class_names, self.montage, self.drop_channels = class_names, montage, drop_channels
        self.channel_aliases, self.resample, self.raw = channel_aliases, resample, raw or RawDEConfig()
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
        self._reader: RecordingsReader | None = None

    def make_reader(self, root: Path) -> CorpusReader:
        if self._reader is None:
            self._reader = RecordingsReader(
                root,
                self.table_path,
                self.name,
                self.label_column,
                self.reader_class_names,
                self.montage,
                self.drop_channels,
                self.channel_aliases,
                self.resample,
                self.raw,
            )
        return self._reader

    @property
    def corpus_name(self) -> str:  # type: ignore[override]
        return self.name

    @property
    def all_channel_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.reader().channel_names

    @property
    def all_class_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.reader().class_names
