"""Data: corpora -> window tables -> LightningDataModules."""

from .base import WindowDataModule
from .channels import DEAP_32, SEED_62, select_channels
from .corpus_datamodule import (
    DeapDataModule,
    EEGCorpusDataModule,
    RecordingsDataModule,
    SeedDataModule,
    SeedIVDataModule,
)
from .cross_corpus import CrossCorpusDataModule
from .splits import SplitConfig, cross_session_split, leave_subjects_out_split, loso_split, trial_split
from .synthetic import SyntheticEEGDataModule, generate_synthetic_corpus
from .windows import WindowDataset, fit_normalization

__all__ = [
    "CrossCorpusDataModule",
    "DeapDataModule",
    "EEGCorpusDataModule",
    "RecordingsDataModule",
    "SeedDataModule",
    "SeedIVDataModule",
    "SplitConfig",
    "DEAP_32",
    "SEED_62",
    "SyntheticEEGDataModule",
    "WindowDataModule",
    "cross_session_split",
    "leave_subjects_out_split",
    "loso_split",
    "WindowDataset",
    "fit_normalization",
    "generate_synthetic_corpus",
    "select_channels",
    "trial_split",
]
