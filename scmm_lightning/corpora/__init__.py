"""Corpus files -> DE windows -> feature cache, with no torch or Lightning import: readers of the
official layouts and of your own recordings, DE extraction, the HDF5 cache, the electrode registry,
splits and normalisation as pure functions of the metadata, and the synthetic generator."""

from .base import CorpusError, CorpusInfo, CorpusReader, SessionWindows
from .bids import BidsReader
from .cache import CorpusTable, build_cache, cache_path, default_cache_dir, load_cache
from .channels import DEAP_32, SEED_62, TEN_TEN, canonical, select_channels
from .de import RawDEConfig, differential_entropy
from .deap import DEAP, DeapReader
from .normalization import Normalization, fit_normalization, normalize
from .recordings import RecordingsReader
from .seed import SEED, SEED_IV, SeedIVReader, SeedReader
from .splits import (
    SplitConfig,
    cross_session_split,
    leave_subjects_out_split,
    loso_split,
    per_class_trial_split,
    rotating_validation,
    subject_folds,
    trial_split,
)
from .synthetic import SyntheticCorpusSpec, generate_synthetic_corpus

READERS = {
    "seed": SeedReader,
    "seed_iv": SeedIVReader,
    "deap": DeapReader,
    "recordings": RecordingsReader,
    "bids": BidsReader,
}

__all__ = [
    "DEAP",
    "DEAP_32",
    "BidsReader",
    "READERS",
    "SEED",
    "SEED_62",
    "SEED_IV",
    "TEN_TEN",
    "CorpusError",
    "CorpusInfo",
    "CorpusReader",
    "CorpusTable",
    "DeapReader",
    "Normalization",
    "RawDEConfig",
    "RecordingsReader",
    "SeedIVReader",
    "SeedReader",
    "SessionWindows",
    "SplitConfig",
    "SyntheticCorpusSpec",
    "build_cache",
    "cache_path",
    "canonical",
    "cross_session_split",
    "default_cache_dir",
    "differential_entropy",
    "fit_normalization",
    "generate_synthetic_corpus",
    "leave_subjects_out_split",
    "load_cache",
    "loso_split",
    "normalize",
    "select_channels",
    "rotating_validation",
    "subject_folds",
    "per_class_trial_split",
    "trial_split",
]
