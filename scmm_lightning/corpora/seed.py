"""SEED and SEED-IV (BCMI lab, SJTU) in their official layouts: two sibling readers over one base
that reads a subject-session's MATLAB file (precomputed DE keys or raw 200 Hz signals)."""

from __future__ import annotations

import re
import warnings
from abc import abstractmethod
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.io

from .base import (
    CorpusError,
    CorpusInfo,
    CorpusReader,
    SessionWindows,
    check_finite,
    session_windows,
    warn_unmatched,
)
from .channels import SEED_62
from .de import RawDEConfig

SEED_SFREQ = 200.0
_FILE = re.compile(r"(\d+)_(\d{8})\.mat")

SEED_LABEL_VALUES = {-1: 0, 0: 1, 1: 2}  # label.mat value -> class index (negative, neutral, positive)

SEED_IV_SESSION_LABELS = {
    1: [1, 2, 3, 0, 2, 0, 0, 1, 0, 1, 2, 1, 1, 1, 2, 3, 2, 2, 3, 3, 0, 3, 0, 3],
    2: [2, 1, 3, 0, 0, 2, 0, 2, 3, 3, 2, 3, 2, 0, 1, 1, 2, 1, 0, 3, 0, 1, 3, 1],
    3: [1, 2, 2, 1, 3, 3, 3, 1, 1, 2, 1, 0, 2, 3, 3, 0, 2, 3, 0, 0, 2, 0, 1, 0],
}

SEED = CorpusInfo("seed", "SEED", SEED_62, ("negative", "neutral", "positive"), "SEED")
SEED_IV = CorpusInfo("seed_iv", "SEED-IV", SEED_62, ("neutral", "sad", "fear", "happy"), "SEED_IV")

Source = Literal["features", "raw"]


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


def subject_files(folder: Path, root: Path, layout: str) -> dict[int, list[Path]]:
    """``{subject}_{YYYYMMDD}.mat`` files of ``folder`` grouped by subject, sorted by date."""
    if not folder.is_dir():
        raise CorpusError(f"{folder} is missing under the corpus root {root}.\n{layout}")
    by_subject: dict[int, list[tuple[str, Path]]] = {}
    skipped = []
    for path in folder.iterdir():
        m = _FILE.fullmatch(path.name)
        if m:
            by_subject.setdefault(int(m.group(1)), []).append((m.group(2), path))
        elif path.name != "label.mat" and not path.name.startswith("."):
            skipped.append(path.name)
    warn_unmatched(folder, skipped, "{subject}_{YYYYMMDD}.mat")
    if not by_subject:
        raise CorpusError(f"{folder}: no files named {{subject}}_{{YYYYMMDD}}.mat.\n{layout}")
    return {s: [p for _, p in sorted(v)] for s, v in sorted(by_subject.items())}


def read_trials(
    path: Path, pattern: str, key_name: str, n_trials: int, shape: str, n_channels: int = 62
) -> list[np.ndarray]:
    """Trials 1..``n_trials`` of a MATLAB file, from the keys matching ``pattern`` (one group: the
    trial number; ``key_name`` names key t in messages, e.g. ``de_LDS{}``); ``shape`` is
    ``features`` ((C, W_t, F) arrays, returned as (W_t, C, F) float32) or ``raw`` ((C, n_samples))."""
    mat = load_mat(path)
    keys = trial_keys(mat, pattern, path)
    missing = [t for t in range(1, n_trials + 1) if t not in keys]
    if missing:
        raise CorpusError(
            f"{path}: keys {[key_name.format(t) for t in missing]} missing (expected trials 1..{n_trials})"
        )
    out = []
    for t in range(1, n_trials + 1):
        arr = np.asarray(mat[keys[t]])
        ok = arr.ndim == 3 and arr.shape[1] >= 1 if shape == "features" else arr.ndim == 2
        if not ok or arr.shape[0] != n_channels:
            expected = "(62, windows, bands)" if shape == "features" else "(62, samples)"
            raise CorpusError(f"{path}: {keys[t]} has shape {arr.shape}, expected {expected}")
        if shape == "features" and arr.shape[2] != 5:
            raise CorpusError(
                f"{path}: {keys[t]} has {arr.shape[2]} bands, expected 5 (delta, theta, alpha, beta, gamma); this "
                "file is not an official feature file (replace it)"
            )
        if np.iscomplexobj(arr) or not np.issubdtype(arr.dtype, np.number):
            raise CorpusError(f"{path}: {keys[t]} holds {arr.dtype} values, expected real numbers (replace the file)")
        check_finite(arr, f"{path}: {keys[t]}")
        out.append(arr.transpose(1, 0, 2).astype(np.float32) if shape == "features" else arr)
    return out


class SeedFamilyReader(CorpusReader):
    """What SEED and SEED-IV share: one MATLAB file per subject-session, read as precomputed DE
    (``source="features"``, key family ``feature_key``) or as raw 200 Hz signals turned into DE here.

    Args:
        root: corpus root (official layout).
        source: ``features`` (precomputed DE) or ``raw`` (signals -> DE here).
        feature_key: key family of the precomputed features (``de_LDS``, ``de_movingAve``, ...).
        raw: DE extraction settings for ``source=raw``.
    """

    n_trials = 0
    feature_folder = ""
    raw_folder = ""

    def __init__(
        self, root: str | Path, source: Source = "features", feature_key: str = "de_LDS", raw: RawDEConfig | None = None
    ) -> None:
        super().__init__(root)
        if source not in ("features", "raw"):
            raise CorpusError(f"source {source!r} unknown; choose features or raw")
        self.source = source
        self.feature_key = feature_key
        self.raw = raw or RawDEConfig()
        self.folder = self.root / (self.feature_folder if source == "features" else self.raw_folder)
        if not self.folder.is_dir():
            raise CorpusError(f"{self.folder} is missing under the corpus root {self.root}.\n{self.layout}")
        self.files = self.find_session_files()

    @abstractmethod
    def find_session_files(self) -> dict[tuple[int, int], Path]:
        """(subject, session) -> its MATLAB file, found under ``self.folder`` (errors name the folder)."""

    def session_files(self) -> dict[tuple[int, int], Path]:
        return dict(self.files)

    def num_sessions(self) -> int:
        """The subject-session files only (``source_files`` also lists SEED's label.mat, which the
        cache progress bar counted as a session)."""
        return len(self.files)

    @abstractmethod
    def labels(self, session: int) -> list[int]:
        """Class index of each trial 1..n_trials of ``session``."""

    def source_files(self) -> list[Path]:
        return list(self.session_files().values())

    def params(self) -> dict[str, Any]:
        p: dict[str, Any] = {"source": self.source}
        if self.source == "features":
            p["feature_key"] = self.feature_key
        else:
            p["raw"] = asdict(self.raw)
        return p

    def read(self, path: Path, subject: int, session: int) -> SessionWindows:
        if self.source == "features":
            trials = read_trials(
                path, re.escape(self.feature_key) + r"(\d+)", self.feature_key + "{}", self.n_trials, "features"
            )
        else:
            trials = self.raw.extract(
                read_trials(path, r"[A-Za-z]+_eeg(\d+)", "<initials>_eeg{}", self.n_trials, "raw"), SEED_SFREQ
            )
        return session_windows(trials, self.labels(session), subject, session, str(path), self.name)

    def sessions(self) -> Iterator[SessionWindows]:
        for (subject, session), path in sorted(self.session_files().items()):
            yield self.read(path, subject, session)


class SeedReader(SeedFamilyReader):
    """SEED: ``ExtractedFeatures/`` (precomputed DE) or ``Preprocessed_EEG/`` (raw 200 Hz -> DE here).
    Labels: class 0 negative, 1 neutral, 2 positive (label.mat -1 / 0 / 1). Sessions 1..3 are the
    subject's files in date order; trials are numbered 1..15."""

    n_trials = 15
    feature_folder = "ExtractedFeatures"
    raw_folder = "Preprocessed_EEG"
    layout = (
        "Expected the official SEED layout (obtain it from the BCMI lab, https://bcmi.sjtu.edu.cn/home/seed/):\n"
        "  <root>/ExtractedFeatures/{subject}_{YYYYMMDD}.mat   (de_LDS1..15, de_movingAve1..15, ...)\n"
        "  <root>/ExtractedFeatures/label.mat                  (key 'label', shape (1, 15))\n"
        "  <root>/Preprocessed_EEG/{subject}_{YYYYMMDD}.mat    (<initials>_eeg1..15, 62 x samples at 200 Hz)\n"
        "  <root>/Preprocessed_EEG/label.mat"
    )

    _labels: list[int] | None = None

    @property
    def info(self) -> CorpusInfo:
        return SEED

    def find_session_files(self) -> dict[tuple[int, int], Path]:
        by_subject = subject_files(self.folder, self.root, self.layout)
        for subject, paths in by_subject.items():
            if len(paths) > 3:
                raise CorpusError(
                    f"subject {subject} has {len(paths)} files in {self.folder}, expected at most 3 sessions"
                )
        return {(s, k): p for s, paths in by_subject.items() for k, p in enumerate(paths, start=1)}

    def source_files(self) -> list[Path]:
        return [*super().source_files(), self.folder / "label.mat"]

    def labels(self, session: int) -> list[int]:
        if self._labels is None:
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
            self._labels = [SEED_LABEL_VALUES[int(v)] for v in values]
        return self._labels

    def sessions(self) -> Iterator[SessionWindows]:
        self.labels(1)  # a bad label.mat fails before any session is read
        yield from super().sessions()


class SeedIVReader(SeedFamilyReader):
    """SEED-IV: ``eeg_feature_smooth/{1,2,3}/`` (DE from 4 s windows) or ``eeg_raw_data/{1,2,3}/``
    (raw 200 Hz -> DE here). Classes 0 neutral, 1 sad, 2 fear, 3 happy, fixed per session (not
    stored in the files). Trials numbered 1..24."""

    n_trials = 24
    feature_folder = "eeg_feature_smooth"
    raw_folder = "eeg_raw_data"
    layout = (
        "Expected the official SEED-IV layout (obtain it from the BCMI lab, https://bcmi.sjtu.edu.cn/home/seed/seed-iv.html):\n"
        "  <root>/eeg_feature_smooth/{1,2,3}/{subject}_{YYYYMMDD}.mat   (de_LDS1..24, de_movingAve1..24, ...)\n"
        "  <root>/eeg_raw_data/{1,2,3}/{subject}_{YYYYMMDD}.mat         (<initials>_eeg1..24 at 200 Hz)"
    )

    @property
    def info(self) -> CorpusInfo:
        return SEED_IV

    def find_session_files(self) -> dict[tuple[int, int], Path]:
        files: dict[tuple[int, int], Path] = {}
        absent = []
        for session in (1, 2, 3):
            folder = self.folder / str(session)
            if not folder.is_dir():
                absent.append(session)
                continue
            for subject, paths in subject_files(folder, self.root, self.layout).items():
                if len(paths) != 1:
                    raise CorpusError(f"{folder}: subject {subject} has {len(paths)} files, expected 1 per session")
                files[(subject, session)] = paths[0]
        if not files:
            raise CorpusError(f"{self.folder}: no session folders 1, 2, 3.\n{self.layout}")
        subjects = sorted({s for s, _ in files})
        gaps = [(s, e) for s in subjects for e in (1, 2, 3) if e not in absent and (s, e) not in files]
        if absent or gaps:
            warnings.warn(
                f"{self.folder}: incomplete SEED-IV tree: "
                + (f"session folders {absent} missing; " if absent else "")
                + (f"subject-sessions {gaps} missing; " if gaps else "")
                + "selecting them is an error",
                stacklevel=2,
            )
        return files

    def labels(self, session: int) -> list[int]:
        return SEED_IV_SESSION_LABELS[session]
