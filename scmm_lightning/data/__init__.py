"""Data: corpora -> window tables -> LightningDataModules.

Names are imported on first use, so that corpus reading and caching (``prepare``) start without
importing Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "WindowDataModule": "base",
    "DEAP_32": "channels",
    "SEED_62": "channels",
    "select_channels": "channels",
    "DeapDataModule": "corpus_datamodule",
    "EEGCorpusDataModule": "corpus_datamodule",
    "RecordingsDataModule": "corpus_datamodule",
    "SeedDataModule": "corpus_datamodule",
    "SeedIVDataModule": "corpus_datamodule",
    "CrossCorpusDataModule": "cross_corpus",
    "SplitConfig": "splits",
    "cross_session_split": "splits",
    "leave_subjects_out_split": "splits",
    "loso_split": "splits",
    "trial_split": "splits",
    "SyntheticEEGDataModule": "synthetic",
    "generate_synthetic_corpus": "synthetic",
    "WindowDataset": "windows",
    "fit_normalization": "windows",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
