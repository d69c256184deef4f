"""Write a small SEED corpus in the official layout (random values, fixed seed).

    python tests/data/seed/generate.py OUT_DIR

ExtractedFeatures/{subject}_{YYYYMMDD}.mat with every official key family for trials 1..15
(de_LDS, de_movingAve, psd_*, dasm_*, rasm_*, asm_*, dcau_*: the reader must ignore all but one),
label.mat, and Preprocessed_EEG/ with <initials>_eeg1..15 raw 200 Hz signals.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import scipy.io

LABELS = [1, 0, -1, -1, 0, 1, -1, 0, 1, 1, 0, -1, 0, 1, -1]
DATES = ["20131027", "20131106", "20131203"]
INITIALS = {1: "djc", 2: "jl", 3: "wsf"}
FAMILY_CHANNELS = {"de": 62, "psd": 62, "dasm": 27, "rasm": 27, "asm": 54, "dcau": 23}


def write_seed(
    root: Path,
    subjects: tuple[int, ...] = (1, 2),
    seconds: tuple[int, int] = (3, 6),
    seed: int = 0,
    families: tuple[str, ...] = tuple(FAMILY_CHANNELS),
    raw: bool = True,
) -> Path:
    """``seconds``: the range of a trial's 1-second windows; ``families``: the feature key families
    written (every one by default: the reader must ignore all but one); ``raw``: also write
    Preprocessed_EEG/ (when not, its values are not drawn, so the features differ from a corpus with it)."""
    rng = np.random.default_rng(seed)
    feat_dir, raw_dir = root / "ExtractedFeatures", root / "Preprocessed_EEG"
    feat_dir.mkdir(parents=True, exist_ok=True)
    if raw:
        raw_dir.mkdir(parents=True, exist_ok=True)
    label = {"label": np.array([LABELS], dtype=np.int16)}
    scipy.io.savemat(feat_dir / "label.mat", label)
    if raw:
        scipy.io.savemat(raw_dir / "label.mat", label)
    for subject in subjects:
        # written out of date order so the reader must sort by date
        for date in reversed(DATES):
            feats, signals = {}, {}
            for t in range(1, 16):
                n_win = int(rng.integers(seconds[0], seconds[1] + 1))
                for family, c in FAMILY_CHANNELS.items():
                    for smooth in ("LDS", "movingAve"):
                        value = rng.normal(10, 2, size=(c, n_win, 5))
                        if family in families:
                            feats[f"{family}_{smooth}{t}"] = value
                if raw:
                    n = n_win * 200 + int(rng.integers(0, 150))  # a trailing partial window
                    signals[f"{INITIALS.get(subject, 'xx')}_eeg{t}"] = rng.normal(0, 20, size=(62, n)).astype(
                        np.float32
                    )
            scipy.io.savemat(feat_dir / f"{subject}_{date}.mat", feats)
            if raw:
                scipy.io.savemat(raw_dir / f"{subject}_{date}.mat", signals)
    return root


if __name__ == "__main__":
    write_seed(Path(sys.argv[1]))
