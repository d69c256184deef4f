"""SEED and SEED-IV (BCMI lab, SJTU) in their official layouts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..channels import SEED_62
from .base import (
    CorpusError,
    CorpusReader,
    RawDEConfig,
    Recording,
    check_finite,
    load_mat,
    trial_keys,
    windows_recording,
)

SEED_SFREQ = 200.0
_FILE = re.compile(r"(\d+)_(\d{8})\.mat")

SEED_LABEL_VALUES = {-1: 0, 0: 1, 1: 2}  # label.mat value -> class index (negative, neutral, positive)

SEED_IV_SESSION_LABELS = {
    1: [1, 2, 3, 0, 2, 0, 0, 1, 0, 1, 2, 1, 1, 1, 2, 3, 2, 2, 3, 3, 0, 3, 0, 3],
    2: [2, 1, 3, 0, 0, 2, 0, 2, 3, 3, 2, 3, 2, 0, 1, 1, 2, 1, 0, 3, 0, 1, 3, 1],
    3: [1, 2, 2, 1, 3, 3, 3, 1, 1, 2, 1, 0, 2, 3, 3, 0, 2, 3, 0, 0, 2, 0, 1, 0],
}

Source = Literal["features", "raw"]


def subject_files(folder: Path, root: Path, layout: str) -> dict[int, list[Path]]:
    """``{subject}_{YYYYMMDD}.mat`` files of ``folder`` grouped by subject, sorted by date."""
    if not folder.is_dir():
        raise CorpusError(f"{folder} is missing under the corpus root {root}.\n{layout}")
    by_subject: dict[int, list[tuple[str, Path]]] = {}
    for path in folder.iterdir():
        m = _FILE.fullmatch(path.name)
        if m:
            by_subject.setdefault(int(m.group(1)), []).append((m.group(2), path))
    if not by_subject:
        raise CorpusError(f"{folder}: no files named {{subject}}_{{YYYYMMDD}}.mat.\n{layout}")
    return {s: [p for _, p in sorted(v)] for s, v in sorted(by_subject.items())}


def read_feature_trials(path: Path, feature_key: str, n_trials: int, n_channels: int = 62) -> list[np.ndarray]:
    """Per-trial (W_t, C, F) arrays from a feature file's ``{feature_key}{t}`` keys (shape (C, W_t, F))."""
    mat = load_mat(path)
    keys = trial_keys(mat, re.escape(feature_key) + r"(\d+)", path)
    missing = [t for t in range(1, n_trials + 1) if t not in keys]
    if missing:
        raise CorpusError(
            f"{path}: keys {[f'{feature_key}{t}' for t in missing]} missing (expected trials 1..{n_trials})"
        )
    out = []
    for t in range(1, n_trials + 1):
        arr = np.asarray(mat[keys[t]])
        if arr.ndim != 3 or arr.shape[0] != n_channels or arr.shape[1] < 1:
            raise CorpusError(f"{path}: {keys[t]} has shape {arr.shape}, expected ({n_channels}, windows, bands)")
        check_finite(arr, f"{path}: {keys[t]}")
        out.append(arr.transpose(1, 0, 2).astype(np.float32))
    return out


def read_raw_trials(path: Path, n_trials: int, n_channels: int = 62) -> list[np.ndarray]:
    """Per-trial raw (C, n_samples) arrays from ``{initials}_eeg{t}`` keys."""
    mat = load_mat(path)
    keys = trial_keys(mat, r"[A-Za-z]+_eeg(\d+)", path)
    missing = [t for t in range(1, n_trials + 1) if t not in keys]
    if missing:
        raise CorpusError(f"{path}: raw trials {missing} missing (expected keys <initials>_eeg1..{n_trials})")
    out = []
    for t in range(1, n_trials + 1):
        arr = np.asarray(mat[keys[t]])
        if arr.ndim != 2 or arr.shape[0] != n_channels:
            raise CorpusError(f"{path}: {keys[t]} has shape {arr.shape}, expected ({n_channels}, samples)")
        check_finite(arr, f"{path}: {keys[t]}")
        out.append(arr)
    return out


class SeedReader(CorpusReader):
    """SEED: ``ExtractedFeatures/`` (precomputed DE, key ``feature_key``) or ``Preprocessed_EEG/``
    (raw 200 Hz -> DE here). Labels: class 0 negative, 1 neutral, 2 positive (label.mat -1 / 0 / 1).
    Sessions 1..3 are the subject's files in date order; trials are numbered 1..15."""

    name = "seed"
    channel_names = SEED_62
    class_names = ("negative", "neutral", "positive")
    n_trials = 15
    layout = (
        "Expected the official SEED layout (obtain it from the BCMI lab, https://bcmi.sjtu.edu.cn/home/seed/):\n"
        "  <root>/ExtractedFeatures/{subject}_{YYYYMMDD}.mat   (de_LDS1..15, de_movingAve1..15, ...)\n"
        "  <root>/ExtractedFeatures/label.mat                  (key 'label', shape (1, 15))\n"
        "  <root>/Preprocessed_EEG/{subject}_{YYYYMMDD}.mat    (<initials>_eeg1..15, 62 x samples at 200 Hz)\n"
        "  <root>/Preprocessed_EEG/label.mat"
    )

    def __init__(
        self, root: str | Path, source: Source = "features", feature_key: str = "de_LDS", raw: RawDEConfig | None = None
    ) -> None:
        super().__init__(root)
        if source not in ("features", "raw"):
            raise CorpusError(f"source {source!r} unknown; choose features or raw")
        self.source = source
        self.feature_key = feature_key
        self.raw = raw or RawDEConfig()
        self.folder = self.root / ("ExtractedFeatures" if source == "features" else "Preprocessed_EEG")
        self.files = subject_files(self.folder, self.root, self.layout)

    def source_files(self) -> list[Path]:
        return [p for ps in self.files.values() for p in ps] + [self.folder / "label.mat"]

    def params(self) -> dict[str, Any]:
        p: dict[str, Any] = {"source": self.source}
        if self.source == "features":
            p["feature_key"] = self.feature_key
        else:
            p["raw"] = asdict(self.raw)
        return p

    def labels(self) -> list[int]:
        path = self.folder / "label.mat"
        mat = load_mat(path)
        if "label" not in mat:
            raise CorpusError(f"{path}: key 'label' missing")
        values = np.asarray(mat["label"]).ravel()
        if values.size != self.n_trials:
            raise CorpusError(f"{path}: 'label' has {values.size} values, expected {self.n_trials}")
        unknown = sorted({int(v) for v in values} - set(SEED_LABEL_VALUES))
        if unknown:
            raise CorpusError(f"{path}: unknown label values {unknown}; SEED labels are -1, 0, 1")
        return [SEED_LABEL_VALUES[int(v)] for v in values]

    def recordings(self) -> Iterator[Recording]:
        labels = self.labels()
        for subject, paths in self.files.items():
            if len(paths) > 3:
                raise CorpusError(
                    f"subject {subject} has {len(paths)} files in {self.folder}, expected at most 3 sessions"
                )
            for session, path in enumerate(paths, start=1):
                yield self._read(path, subject, session, labels)

    def _read(self, path: Path, subject: int, session: int, labels: list[int]) -> Recording:
        if self.source == "features":
            trials = read_feature_trials(path, self.feature_key, self.n_trials)
        else:
            trials = self.raw.extract(read_raw_trials(path, self.n_trials), SEED_SFREQ)
        return windows_recording(trials, labels, subject, session, str(path), self.name)


class SeedIVReader(SeedReader):
    """SEED-IV: ``eeg_feature_smooth/{1,2,3}/`` (DE from 4 s windows, key ``feature_key``) or
    ``eeg_raw_data/{1,2,3}/`` (raw 200 Hz -> DE here). Classes 0 neutral, 1 sad, 2 fear, 3 happy,
    fixed per session (not stored in the files). Trials numbered 1..24."""

    name = "seed_iv"
    class_names = ("neutral", "sad", "fear", "happy")
    n_trials = 24
    layout = (
        "Expected the official SEED-IV layout (obtain it from the BCMI lab, https://bcmi.sjtu.edu.cn/home/seed/seed-iv.html):\n"
        "  <root>/eeg_feature_smooth/{1,2,3}/{subject}_{YYYYMMDD}.mat   (de_LDS1..24, de_movingAve1..24, ...)\n"
        "  <root>/eeg_raw_data/{1,2,3}/{subject}_{YYYYMMDD}.mat         (<initials>_eeg1..24 at 200 Hz)"
    )

    def __init__(
        self, root: str | Path, source: Source = "features", feature_key: str = "de_LDS", raw: RawDEConfig | None = None
    ) -> None:
        CorpusReader.__init__(self, root)
        if source not in ("features", "raw"):
            raise CorpusError(f"source {source!r} unknown; choose features or raw")
        self.source = source
        self.feature_key = feature_key
        self.raw = raw or RawDEConfig()
        base = self.root / ("eeg_feature_smooth" if source == "features" else "eeg_raw_data")
        if not base.is_dir():
            raise CorpusError(f"{base} is missing under the corpus root {self.root}.\n{self.layout}")
        self.session_files: dict[int, dict[int, Path]] = {}
        for session in (1, 2, 3):
            folder = base / str(session)
            if not folder.is_dir():
                continue
            for subject, paths in subject_files(folder, self.root, self.layout).items():
                if len(paths) != 1:
                    raise CorpusError(f"{folder}: subject {subject} has {len(paths)} files, expected 1 per session")
                self.session_files.setdefault(subject, {})[session] = paths[0]
        if not self.session_files:
            raise CorpusError(f"{base}: no session folders 1, 2, 3.\n{self.layout}")

    def source_files(self) -> list[Path]:
        return [p for sessions in self.session_files.values() for p in sessions.values()]

    def recordings(self) -> Iterator[Recording]:
        for subject, sessions in sorted(self.session_files.items()):
            for session, path in sorted(sessions.items()):
                yield self._read(path, subject, session, SEED_IV_SESSION_LABELS[session])
