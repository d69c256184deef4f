"""What every corpus reader yields, and the checks they share."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io

from ..de import DEFAULT_BANDS, differential_entropy, lds_smooth, moving_average


class CorpusError(ValueError):
    """Bad or missing corpus input; the message names the file and the problem."""


@dataclass
class Recording:
    """The windows of one subject-session: features (W, C, F) and one metadata row per window."""

    features: np.ndarray
    subject: int
    session: int
    trial: np.ndarray
    window: np.ndarray
    label: np.ndarray
    source: str
    corpus: str = ""


@dataclass(frozen=True)
class RawDEConfig:
    """How raw signals become DE features."""

    window_seconds: float = 1.0
    bands: tuple[tuple[float, float], ...] = tuple(DEFAULT_BANDS.values())
    filter_order: int = 4
    smoothing: str = "none"  # none | moving_average | lds
    moving_average_size: int = 5
    lds_process_var: float = 0.01
    lds_observation_var: float = 1.0

    def __post_init__(self) -> None:
        if self.smoothing not in ("none", "moving_average", "lds"):
            raise ValueError(f"smoothing {self.smoothing!r} unknown; choose none, moving_average or lds")

    def smooth(self, features: np.ndarray) -> np.ndarray:
        """Smooth (W, C, F) over windows of one trial."""
        if self.smoothing == "moving_average":
            return moving_average(features, self.moving_average_size, axis=0)
        if self.smoothing == "lds":
            return lds_smooth(features, self.lds_process_var, self.lds_observation_var, axis=0)
        return features

    def extract(self, trials: list[np.ndarray], sfreq: float) -> list[np.ndarray]:
        """DE (W_t, C, F) for each raw trial (C, n_t); equal-length trials are filtered as one array."""
        bands = {str(i): b for i, b in enumerate(self.bands)}
        lengths = {t.shape[-1] for t in trials}
        if len(lengths) == 1:
            de = differential_entropy(np.stack(trials), sfreq, bands, self.window_seconds, self.filter_order)
            per_trial = [de[i].transpose(1, 0, 2) for i in range(len(trials))]
        else:
            per_trial = [
                differential_entropy(t, sfreq, bands, self.window_seconds, self.filter_order).transpose(1, 0, 2)
                for t in trials
            ]
        return [self.smooth(f) for f in per_trial]


def check_finite(array: np.ndarray, where: str) -> None:
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise CorpusError(f"{where}: {bad} NaN/inf values; the file is corrupt or was modified")


def load_mat(path: Path) -> dict[str, Any]:
    try:
        return scipy.io.loadmat(str(path))
    except FileNotFoundError:
        raise CorpusError(f"{path}: file missing") from None
    except Exception as err:  # scipy raises several types for truncated / non-MAT files
        raise CorpusError(f"{path}: cannot read MATLAB file (truncated or corrupt?): {err}") from err


def trial_keys(mat: dict[str, Any], pattern: str, path: Path) -> dict[int, str]:
    """Map trial number -> key for keys matching ``pattern`` (with one group: the trial number)."""
    regex = re.compile(pattern)
    found = {}
    for key in mat:
        m = regex.fullmatch(key)
        if m:
            found[int(m.group(1))] = key
    if not found:
        raise CorpusError(
            f"{path}: no key matches {pattern!r}; keys present: {sorted(k for k in mat if not k.startswith('__'))}"
        )
    return found


def windows_recording(
    per_trial: list[np.ndarray],
    labels: list[int],
    subject: int,
    session: int,
    source: str,
    corpus: str,
    trials: list[int] | None = None,
) -> Recording:
    """Concatenate per-trial (W_t, C, F) features into a Recording; trials are numbered ``trials``
    (default 1, 2, ...)."""
    counts = [f.shape[0] for f in per_trial]
    trials = list(range(1, len(per_trial) + 1)) if trials is None else trials
    return Recording(
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
    """Reads one corpus from its official layout under ``root``."""

    name: str = ""
    channel_names: tuple[str, ...] = ()
    class_names: tuple[str, ...] = ()
    layout: str = ""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise CorpusError(f"corpus root {self.root} does not exist.\n{self.layout}")

    @abstractmethod
    def source_files(self) -> list[Path]:
        """Every file the reader will read (for the cache key)."""

    def num_recordings(self) -> int:
        """How many Recordings :meth:`recordings` yields (for the progress bar)."""
        return len(self.source_files())

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """Extraction parameters (for the cache key and the cache's attributes)."""

    @abstractmethod
    def recordings(self) -> Iterator[Recording]:
        """One Recording per subject-session, streamed (one file in memory at a time)."""
