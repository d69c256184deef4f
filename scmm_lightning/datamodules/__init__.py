"""LightningDataModules: the corpora of :mod:`scmm_lightning.corpora` selected, split, normalised
and served as batches; a source and a target corpus paired for cross-corpus transfer."""

from .base import WindowDataModule
from .corpus import (
    BidsDataModule,
    DeapDataModule,
    EEGCorpusDataModule,
    RecordingsDataModule,
    SeedDataModule,
    SeedIVDataModule,
)
from .cross_corpus import CrossCorpusDataModule
from .dataset import WindowDataset, make_loader
from .multi_source import MultiSourceDataModule
from .synthetic import SyntheticEEGDataModule

__all__ = [
    "BidsDataModule",
    "CrossCorpusDataModule",
    "DeapDataModule",
    "EEGCorpusDataModule",
    "MultiSourceDataModule",
    "RecordingsDataModule",
    "SeedDataModule",
    "SeedIVDataModule",
    "SyntheticEEGDataModule",
    "WindowDataModule",
    "WindowDataset",
    "make_loader",
]
