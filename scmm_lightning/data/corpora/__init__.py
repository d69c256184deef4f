"""Readers of the official corpus layouts."""

from .base import CorpusError, CorpusReader, RawDEConfig, Recording
from .deap import DeapReader
from .recordings import RecordingsReader
from .seed import SeedIVReader, SeedReader

READERS = {"seed": SeedReader, "seed_iv": SeedIVReader, "deap": DeapReader, "recordings": RecordingsReader}

__all__ = [
    "READERS",
    "CorpusError",
    "CorpusReader",
    "DeapReader",
    "RawDEConfig",
    "Recording",
    "RecordingsReader",
    "SeedIVReader",
    "SeedReader",
]
