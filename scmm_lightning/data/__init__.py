"""Data: corpora -> window tables -> LightningDataModules."""

from .channels import DEAP_32, SEED_62, select_channels
from .synthetic import SyntheticEEGDataModule, generate_synthetic_corpus
from .windows import WindowDataset, fit_normalization, trial_split

__all__ = [
    "DEAP_32",
    "SEED_62",
    "SyntheticEEGDataModule",
    "WindowDataset",
    "fit_normalization",
    "generate_synthetic_corpus",
    "select_channels",
    "trial_split",
]
