"""LightningDataModules over the real corpora and your own recordings: the feature cache is built
in ``prepare_data`` and read in ``setup``. A leaf declares its reader's options; everything every
corpus shares is declared once in :class:`~scmm_lightning.datamodules.base.WindowDataModule`."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..corpora import (
    DEAP,
    SEED,
    SEED_IV,
    BidsReader,
    CorpusError,
    CorpusInfo,
    CorpusReader,
    CorpusTable,
    DeapReader,
    RawDEConfig,
    RecordingsReader,
    SeedIVReader,
    SeedReader,
    build_cache,
    cache_path,
    load_cache,
)
from ..corpora.de import DEFAULT_BANDS
from .base import WindowDataModule


def raw_description(raw: RawDEConfig) -> dict[str, Any]:
    """DE settings as plain JSON values: bands as [low, high] Hz, windows non-overlapping (step = length)."""
    out = asdict(raw)
    out["bands"] = [list(b) for b in raw.bands]
    out["step_seconds"] = raw.window_seconds
    return out


def default_root(folder: str) -> Path:
    base = os.environ.get("SCMM_DATA_ROOT")
    if not base:
        raise CorpusError(
            f"no corpus root given: set data.init_args.root, or SCMM_DATA_ROOT so that $SCMM_DATA_ROOT/{folder} "
            "holds the corpus"
        )
    return Path(base) / folder


class EEGCorpusDataModule(WindowDataModule):
    """A corpus read through its reader and the feature cache; leaves build the reader.

    Args:
        root: corpus root (default ``$SCMM_DATA_ROOT/<folder of the corpus>``).
        cache_dir: feature cache (default ``$SCMM_CACHE_DIR`` or ``~/.cache/scmm_lightning``).
    """

    def __init__(self, root: str | None = None, cache_dir: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.root = Path(root) if root else None
        self.cache_dir = cache_dir
        self.table: CorpusTable | None = None
        self._reader: CorpusReader | None = None

    def make_reader(self, root: Path) -> CorpusReader:
        raise NotImplementedError

    @property
    def folder(self) -> str:
        """Where the corpus lies under ``$SCMM_DATA_ROOT`` when ``root`` is not given."""
        return self.info.folder

    def reader(self) -> CorpusReader:
        if self._reader is None:
            self._reader = self.make_reader(self.root or default_root(self.folder))
        return self._reader

    def prepare_data(self) -> None:
        build_cache(self.reader(), self.cache_dir)

    def feature_description(self) -> dict[str, Any]:
        raw = getattr(self, "raw", None)
        if raw is None:
            return {}
        resample = getattr(self, "reader_args", {}).get("resample")
        return {"source": "raw signals", **raw_description(raw), **({"resample_hz": resample} if resample else {})}

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
        source: ``features`` (ExtractedFeatures/) or ``raw`` (Preprocessed_EEG/ -> DE here).
        feature_key: ExtractedFeatures key family (``de_LDS``, ``de_movingAve``, ...).
        raw: DE extraction settings for ``source=raw``.
    """

    reader_class: type[SeedReader] = SeedReader

    def __init__(
        self,
        source: Literal["features", "raw"] = "features",
        feature_key: str = "de_LDS",
        raw: RawDEConfig | None = None,
        **kwargs,
    ) -> None:
        self.check_own_arguments(locals(), SeedDataModule)
        super().__init__(**kwargs)
        self.source, self.feature_key, self.raw = source, feature_key, raw or RawDEConfig()

    @property
    def info(self) -> CorpusInfo:
        return SEED

    @property
    def num_bands(self) -> int:
        return len(self.raw.bands) if self.source == "raw" else 5

    def make_reader(self, root: Path) -> CorpusReader:
        return self.reader_class(root, self.source, self.feature_key, self.raw)

    #: seconds per window of the official ExtractedFeatures (corpora.md: SEED 1 s, SEED-IV 4 s)
    official_window_seconds: float = 1.0

    def feature_description(self) -> dict[str, Any]:
        if self.source == "raw":
            return super().feature_description()
        smoothing = (
            "lds" if "LDS" in self.feature_key else "moving_average" if "movingAve" in self.feature_key else "none"
        )
        return {
            "source": f"official extracted features ({self.feature_key})",
            "window_seconds": self.official_window_seconds,
            "step_seconds": self.official_window_seconds,
            "bands": [list(b) for b in DEFAULT_BANDS.values()],
            "smoothing": smoothing,
        }


class SeedIVDataModule(SeedDataModule):
    """SEED-IV (62 electrodes; classes neutral / sad / fear / happy); arguments as SeedDataModule,
    ``root`` defaulting to ``$SCMM_DATA_ROOT/SEED_IV``."""

    reader_class = SeedIVReader
    official_window_seconds = 4.0

    @property
    def info(self) -> CorpusInfo:
        return SEED_IV


class DeapDataModule(EEGCorpusDataModule):
    """DEAP (32 electrodes; binary low / high on one rating dimension; one session).

    Args:
        label_dimension: valence, arousal, dominance or liking.
        threshold: rating > threshold is class 1 (high).
        baseline: ``subtract`` the mean DE of the 3 s pre-trial baseline, or ``none``.
        raw: DE extraction settings.
    """

    def __init__(
        self,
        label_dimension: Literal["valence", "arousal", "dominance", "liking"] = "valence",
        threshold: float = 5.0,
        baseline: Literal["none", "subtract"] = "subtract",
        raw: RawDEConfig | None = None,
        **kwargs,
    ) -> None:
        self.check_own_arguments(locals(), DeapDataModule)
        super().__init__(**kwargs)
        self.label_dimension, self.threshold, self.baseline = label_dimension, threshold, baseline
        self.raw = raw or RawDEConfig()

    @property
    def info(self) -> CorpusInfo:
        return DEAP

    @property
    def num_bands(self) -> int:
        return len(self.raw.bands)

    def make_reader(self, root: Path) -> CorpusReader:
        return DeapReader(root, self.label_dimension, self.threshold, self.baseline, self.raw)

    def feature_description(self) -> dict[str, Any]:
        return {**super().feature_description(), "baseline": self.baseline}


class FileMontageDataModule(EEGCorpusDataModule):
    """A corpus whose electrodes and classes come from its files (your recordings, a BIDS dataset):
    a leaf sets ``reader_class``, ``self.raw`` and ``self.reader_args`` (its reader's options); the
    montage and classes are read (and checked) as soon as they are asked for."""

    reader_class: type[CorpusReader]
    raw: RawDEConfig
    reader_args: dict[str, Any]
    #: a leaf's own argument name -> the reader's, where they differ
    renamed: dict[str, str] = {}

    def keep_reader_args(self, given: dict[str, Any]) -> None:
        """The leaf's own arguments (its ``locals()`` at the top of ``__init__``) become the reader's
        options, ``raw`` defaulted; declared once, in the leaf's signature."""
        self.raw = given.get("raw") or RawDEConfig()
        skip = {"self", "kwargs", "__class__"}
        self.reader_args = {self.renamed.get(k, k): v for k, v in given.items() if k not in skip} | {"raw": self.raw}

    def make_reader(self, root: Path) -> CorpusReader:
        return self.reader_class(root, **self.reader_args)

    @property
    def info(self) -> CorpusInfo:
        return self.reader().info

    @property
    def num_bands(self) -> int:
        return len(self.raw.bands)


class RecordingsDataModule(FileMontageDataModule):
    """Your own recordings: EEG files MNE reads plus a table (see :class:`~scmm_lightning.corpora.RecordingsReader`).

    Electrodes and classes come from the files and the table, so they are known (and checked) as
    soon as the datamodule is built; the montage then links into the model like any corpus's.
    ``root`` defaults to ``$SCMM_DATA_ROOT/RECORDINGS``.

    Args:
        table: the recordings table (CSV/TSV); relative paths are looked up in the working directory, then ``root``.
        name: corpus name (logs, cache file names).
        label_column: table column holding the label.
        class_names: labels in class-index order (default: the table's labels, sorted).
        montage: electrodes to read, in this order (default: those every recording has).
        drop_channels: more non-EEG channel names to drop.
        channel_aliases: file channel name -> 10-10 name.
        resample: resample to this rate (Hz) before DE (default: each file's own rate).
        raw: DE extraction settings.
    """

    reader_class = RecordingsReader

    def __init__(
        self,
        table: str = "recordings.csv",
        name: str = "recordings",
        label_column: str = "label",
        class_names: list[str] | None = None,
        montage: list[str] | None = None,
        drop_channels: list[str] | None = None,
        channel_aliases: dict[str, str] | None = None,
        resample: float | None = None,
        raw: RawDEConfig | None = None,
        **kwargs,
    ) -> None:
        given = dict(locals())
        self.check_own_arguments(given, RecordingsDataModule)
        super().__init__(**kwargs)
        self.keep_reader_args(given)

    @property
    def folder(self) -> str:
        return "RECORDINGS"


class BidsDataModule(FileMontageDataModule):
    """An EEG BIDS dataset (OpenNeuro's layout), read through mne-bids (see
    :class:`~scmm_lightning.corpora.BidsReader`): subjects and sessions from the BIDS entities,
    labelled segments from each recording's ``events.tsv``. ``root`` (the BIDS root) defaults to
    ``$SCMM_DATA_ROOT/BIDS``.

    Args:
        task: read only this task's recordings (default: every task).
        label_column: the ``events.tsv`` column holding the label.
        class_names: labels in class-index order (default: every label found, sorted).
        ignore_labels: event labels that are not segments to classify (skipped).
        bids_subjects: BIDS subject labels to read (default all); ``subjects`` then selects by integer id.
        name: corpus name (default: the root folder's name).
        montage: electrodes to read, in this order (default: those every recording has).
        drop_channels: more non-EEG channel names to drop.
        channel_aliases: file channel name -> 10-10 name.
        resample: resample to this rate (Hz) before DE (default: each file's own rate).
        raw: DE extraction settings.
    """

    reader_class = BidsReader
    renamed = {"bids_subjects": "subjects"}  # `subjects` is the shared integer-id selection

    def __init__(
        self,
        task: str | None = None,
        label_column: str = "trial_type",
        class_names: list[str] | None = None,
        ignore_labels: list[str] | None = None,
        bids_subjects: list[str] | None = None,
        name: str | None = None,
        montage: list[str] | None = None,
        drop_channels: list[str] | None = None,
        channel_aliases: dict[str, str] | None = None,
        resample: float | None = None,
        raw: RawDEConfig | None = None,
        **kwargs,
    ) -> None:
        given = dict(locals())
        self.check_own_arguments(given, BidsDataModule)
        super().__init__(**kwargs)
        self.keep_reader_args(given)

    @property
    def folder(self) -> str:
        return "BIDS"
