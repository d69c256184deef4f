"""DEAP (Koelstra et al.): ``data_preprocessed_python/sNN.dat``, raw 128 Hz -> DE."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .base import CorpusError, CorpusInfo, CorpusReader, SessionWindows, check_finite, warn_unmatched
from .channels import DEAP_32
from .de import RawDEConfig, differential_entropy
from .safe_pickle import load_numpy_pickle

DEAP_SFREQ = 128.0
DEAP_BASELINE_SECONDS = 3.0
DEAP_SHAPE = (40, 40, 8064)
DEAP_DIMENSIONS = ("valence", "arousal", "dominance", "liking")
_FILE = re.compile(r"s(\d{2})\.dat")

DEAP = CorpusInfo("deap", "DEAP", DEAP_32, ("low", "high"), "DEAP")


class DeapReader(CorpusReader):
    """DEAP trials as DE windows of the 60 s stimulus (the 3 s pre-trial baseline is not a window).

    Args:
        root: corpus root holding ``data_preprocessed_python/``.
        label_dimension: which self-rating becomes the label.
        threshold: binary label = rating > threshold (class 0 low, 1 high).
        baseline: ``subtract`` the mean DE of the baseline windows from every trial window, or ``none``.
        raw: DE extraction settings.
    """

    layout = (
        "Expected the official DEAP layout (obtain it from Queen Mary University of London, "
        "https://www.eecs.qmul.ac.uk/mmv/datasets/deap/):\n"
        "  <root>/data_preprocessed_python/s01.dat ... s32.dat   (pickled dict: 'data' (40, 40, 8064) at 128 Hz, "
        "'labels' (40, 4))"
    )

    def __init__(
        self,
        root: str | Path,
        label_dimension: Literal["valence", "arousal", "dominance", "liking"] = "valence",
        threshold: float = 5.0,
        baseline: Literal["none", "subtract"] = "subtract",
        raw: RawDEConfig | None = None,
    ) -> None:
        super().__init__(root)
        if label_dimension not in DEAP_DIMENSIONS:
            raise CorpusError(f"label_dimension {label_dimension!r} unknown; choose one of {DEAP_DIMENSIONS}")
        if baseline not in ("none", "subtract"):
            raise CorpusError(f"baseline {baseline!r} unknown; choose none or subtract")
        self.label_dimension = label_dimension
        self.threshold = float(threshold)
        self.baseline = baseline
        self.raw = raw or RawDEConfig()
        folder = self.root / "data_preprocessed_python"
        if not folder.is_dir():
            raise CorpusError(f"{folder} is missing under the corpus root {self.root}.\n{self.layout}")
        self.files = {int(m.group(1)): p for p in sorted(folder.iterdir()) if (m := _FILE.fullmatch(p.name))}
        skipped = [p.name for p in folder.iterdir() if not _FILE.fullmatch(p.name) and not p.name.startswith(".")]
        warn_unmatched(folder, skipped, "sNN.dat")
        if not self.files:
            raise CorpusError(f"{folder}: no files s01.dat ... s32.dat.\n{self.layout}")

    @property
    def info(self) -> CorpusInfo:
        return DEAP

    def source_files(self) -> list[Path]:
        return list(self.files.values())

    def params(self) -> dict[str, Any]:
        return {
            "label_dimension": self.label_dimension,
            "threshold": self.threshold,
            "baseline": self.baseline,
            "raw": asdict(self.raw),
        }

    def load(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        obj = load_numpy_pickle(path)
        if not isinstance(obj, dict) or "data" not in obj or "labels" not in obj:
            keys = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
            raise CorpusError(f"{path}: expected a dict with 'data' and 'labels', found {keys}")
        data, labels = np.asarray(obj["data"]), np.asarray(obj["labels"])
        if data.shape != DEAP_SHAPE:
            raise CorpusError(
                f"{path}: 'data' has shape {data.shape}, expected {DEAP_SHAPE} (trials, channels, samples)"
            )
        if labels.shape != (40, 4):
            raise CorpusError(f"{path}: 'labels' has shape {labels.shape}, expected (40, 4)")
        check_finite(data, f"{path}: 'data'")
        check_finite(labels, f"{path}: 'labels'")
        if labels.min() < 1 or labels.max() > 9:
            raise CorpusError(f"{path}: ratings outside 1..9 ({labels.min()}..{labels.max()}): unknown labels")
        return data, labels

    def sessions(self) -> Iterator[SessionWindows]:
        win = self.raw.window_seconds
        n_base = int(round(DEAP_BASELINE_SECONDS / win))
        for subject, path in self.files.items():
            data, ratings = self.load(path)
            eeg = data[:, : len(DEAP_32)]
            bands = {str(i): b for i, b in enumerate(self.raw.bands)}
            de = differential_entropy(eeg, DEAP_SFREQ, bands, win, self.raw.filter_order)  # (40, C, W, F)
            de = de.transpose(0, 2, 1, 3)  # (40, W, C, F)
            base, trial = de[:, :n_base], de[:, n_base:]
            if self.baseline == "subtract":
                trial = trial - base.mean(axis=1, keepdims=True)
            trial = np.stack([self.raw.smooth(t) for t in trial])
            n_trials, n_win = trial.shape[:2]
            rating = ratings[:, DEAP_DIMENSIONS.index(self.label_dimension)]
            labels = (rating > self.threshold).astype(np.int64)
            yield SessionWindows(
                features=trial.reshape(-1, *trial.shape[2:]).astype(np.float32),
                subject=subject,
                session=1,
                trial=np.repeat(np.arange(1, n_trials + 1), n_win),
                window=np.tile(np.arange(n_win), n_trials),
                label=np.repeat(labels, n_win),
                source=str(path),
                corpus=self.name,
            )
