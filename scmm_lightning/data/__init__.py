"""Data: corpora -> window tables -> LightningDataModules."""

from .channels import DEAP_32, SEED_62, select_channels
from .corpus_datamodule import DeapDataModule, EEGCorpusDataModule, SeedDataModule, SeedIVDataModule, SplitConfig
from .synthetic import SyntheticEEGDataModule, generate_synthetic_corpus
from .windows import WindowDataset, fit_normalization, trial_split

__all__ = [
    "DeapDataModule",
    "EEGCorpusDataModule",
    "SeedDataModule",
    "SeedIVDataModule",
    "SplitConfig",
    "DEAP_32",
    "SEED_62",
    "SyntheticEEGDataModule",
    "WindowDataset",
    "fit_normalization",
    "generate_synthetic_corpus",
    "select_channels",
    "trial_split",
]
