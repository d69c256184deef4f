"""The corpus contract: what every reader is, what it yields, and the checks readers share."""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


class CorpusError(ValueError):
    """Bad or missing corpus input; the message names the file and the problem."""


@dataclass(frozen=True)
class CorpusInfo:
    """What a corpus is before any file is read: its identifier (cache file names), its title (tables,
    messages), its electrodes in order, its classes in class-index order, and the folder under
    ``$SCMM_DATA_ROOT`` that holds it by default."""

    name: str
    title: str
    channel_names: tuple[str, ...]
    class_names: tuple[str, ...]
    folder: str = ""


@dataclass
class SessionWindows:
    """The windows of one subject-session: features (W, C, F) and one metadata row per window."""

    features: np.ndarray
    subject: int
    session: int
    trial: np.ndarray
    window: np.ndarray
    label: np.ndarray
    source: str
    corpus: str = ""


def warn_unmatched(folder: Path, names: list[str], expected: str) -> None:
    """Warn about files in a corpus folder that the reader skips because their names do not follow
    the official layout (a renamed or re-saved file would otherwise vanish without a word)."""
    if names:
        shown = ", ".join(sorted(names)[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        warnings.warn(f"{folder}: skipped {len(names)} file(s) not named {expected}: {shown}", stacklevel=3)


def check_finite(array: np.ndarray, where: str) -> None:
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise CorpusError(f"{where}: {bad} NaN/inf values; the file is corrupt or was modified")


def session_windows(
    per_trial: list[np.ndarray],
    labels: list[int],
    subject: int,
    session: int,
    source: str,
    corpus: str,
    trials: list[int] | None = None,
) -> SessionWindows:
    """Concatenate per-trial (W_t, C, F) features of one subject-session; trials are numbered
    ``trials`` (default 1, 2, ...)."""
    counts = [f.shape[0] for f in per_trial]
    trials = list(range(1, len(per_trial) + 1)) if trials is None else trials
    return SessionWindows(
        features=np.concatenate(per_trial).astype(np.float32),
        subject=subject,
        session=session,
        trial=np.repeat(np.asarray(trials, dtype=np.int64), counts),
        window=np.concatenate([np.arange(c) for c in counts]),
        label=np.repeat(np.asarray(labels, dtype=np.int64), counts),
        source=source,
        corpus=corpus,
    )


class CorpusReader(ABC):
    """Reads one corpus from its layout under ``root``.

    The contract: :attr:`info` (name, electrodes, classes), :meth:`source_files` and
    :meth:`params` (what the cache key hashes) and :meth:`sessions` (the windows, one
    subject-session at a time).
    """

    layout: str = ""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()
        if self.root.exists() and not self.root.is_dir():
            raise CorpusError(
                f"corpus root {self.root} is a file; give the directory that holds the corpus.\n{self.layout}"
            )
        if not self.root.is_dir():
            raise CorpusError(f"corpus root {self.root} does not exist.\n{self.layout}")

    @property
    @abstractmethod
    def info(self) -> CorpusInfo:
        """Name, electrodes and classes of what :meth:`sessions` yields."""

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def channel_names(self) -> tuple[str, ...]:
        return self.info.channel_names

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.info.class_names

    @abstractmethod
    def source_files(self) -> list[Path]:
        """Every file the reader will read (for the cache key)."""

    def num_sessions(self) -> int:
        """How many subject-sessions :meth:`sessions` yields (for the progress bar)."""
        return len(self.source_files())

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """Extraction parameters (for the cache key and the cache's attributes)."""

    @abstractmethod
    def sessions(self) -> Iterator[SessionWindows]:
        """One :class:`SessionWindows` per subject-session, streamed (one file in memory at a time)."""
