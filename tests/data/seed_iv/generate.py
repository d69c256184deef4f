"""Write a SEED-IV corpus in the official layout (fixed seed).

    python tests/data/seed_iv/generate.py OUT_DIR

eeg_feature_smooth/{1,2,3}/{subject}_{YYYYMMDD}.mat (de_LDS, de_movingAve, psd_LDS, psd_movingAve
for trials 1..24) and eeg_raw_data/{1,2,3}/ (<initials>_eeg1..24 at 200 Hz). By default small and
random (the tests' fixture); with ``signal`` > 0 the DE features carry a planted class signal
(:func:`planted_effects`), e.g. for the full-size rehearsal of ``benchmarks/seed_iv_rehearsal.py``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.io

DATES = {1: "20160518", 2: "20160601", 3: "20160615"}
# the official per-session label tables (0 neutral, 1 sad, 2 fear, 3 happy; ../shared/reference/corpora.md),
# copied here rather than imported from the reader: a wrong table in the reader then fails the rehearsal
LABELS = {
    1: [1, 2, 3, 0, 2, 0, 0, 1, 0, 1, 2, 1, 1, 1, 2, 3, 2, 2, 3, 3, 0, 3, 0, 3],
    2: [2, 1, 3, 0, 0, 2, 0, 2, 3, 3, 2, 3, 2, 0, 1, 1, 2, 1, 0, 3, 0, 1, 3, 1],
    3: [1, 2, 2, 1, 3, 3, 3, 1, 1, 2, 1, 0, 2, 3, 3, 0, 2, 3, 0, 0, 2, 0, 1, 0],
}
FEATURE_KEYS = ("de_LDS", "de_movingAve", "psd_LDS", "psd_movingAve")


def planted_effects(
    subjects: tuple[int, ...], signal: float, trial_effect: float, seed: int
) -> Callable[[int, int, int, int], np.ndarray]:
    """The planted structure of a DE value (62 electrodes x 5 bands), in units of the per-window noise's
    standard deviation (2): subject offset ~ N(0, 1) per feature; class c's effect ``signal`` x
    (P_c + Q_{s,c}) / sqrt(2), a pattern shared by every subject (P_c ~ N(0, 1) per feature) plus one
    of the subject's own (Q_{s,c}); each trial its own offset ``trial_effect`` x N(0, 1) per feature
    (a recording's state drifts from trial to trial: the reason a held-out trial is harder than a
    held-out window). Over the 310 features a nearest-class-mean rule fitted on 4 trials per class
    separates two classes' test windows with a signal-to-noise ratio of about
    310 s^2 / sqrt((t^2 + 1) (620 s^2 + 155 t^2)) (s = ``signal``, t = ``trial_effect``): 0.65 at
    s = 0.2, t = 1. Returns a callable of (subject, session, trial, label) giving the (62, 1, 5)
    array added to every window of that trial."""
    rng = np.random.default_rng(seed + 1000)
    shared = rng.normal(size=(4, 62, 1, 5))
    own = {s: rng.normal(size=(4, 62, 1, 5)) for s in subjects}
    offset = {s: rng.normal(size=(62, 1, 5)) for s in subjects}
    trial = {(s, sess, t): rng.normal(size=(62, 1, 5)) for s in subjects for sess in DATES for t in range(1, 25)}

    def effect(subject: int, session: int, t: int, label: int) -> np.ndarray:
        class_part = (shared[label] + own[subject][label]) / np.sqrt(2)
        return 2.0 * (offset[subject] + signal * class_part + trial_effect * trial[(subject, session, t)])

    return effect


def write_seed_iv(
    root: Path,
    subjects: tuple[int, ...] = (1, 2),
    seconds: tuple[int, int] = (2, 4),
    seed: int = 1,
    signal: float = 0.0,
    trial_effect: float = 1.0,
    raw: bool = True,
    keys: tuple[str, ...] = FEATURE_KEYS,
) -> Path:
    """``seconds``: the range of a trial's 4-second windows (drawn per subject and trial); ``signal``: the
    planted class effect (0: pure noise, the tests' fixture) and ``trial_effect`` the trials' own
    offsets (:func:`planted_effects`); ``raw``: also write eeg_raw_data/;
    ``keys``: the feature key families written (a reader must ignore those it is not asked for)."""
    rng = np.random.default_rng(seed)
    planted = planted_effects(tuple(subjects), signal, trial_effect, seed) if signal else None
    for session, date in DATES.items():
        feat_dir, raw_dir = root / "eeg_feature_smooth" / str(session), root / "eeg_raw_data" / str(session)
        feat_dir.mkdir(parents=True, exist_ok=True)
        if raw:
            raw_dir.mkdir(parents=True, exist_ok=True)
        for subject in subjects:
            feats, signals = {}, {}
            for t in range(1, 25):
                n_win = int(rng.integers(seconds[0], seconds[1] + 1))
                extra = 0.0 if planted is None else planted(subject, session, t, LABELS[session][t - 1])
                for key in FEATURE_KEYS:
                    value = rng.normal(10, 2, size=(62, n_win, 5))
                    if key in keys:
                        feats[f"{key}{t}"] = value + (extra if key.startswith("de_") else 0.0)
                if raw:  # drawn only when written (so a corpus without raw/ has other feature values)
                    signals[f"cz_eeg{t}"] = rng.normal(0, 20, size=(62, n_win * 4 * 200)).astype(np.float32)
            scipy.io.savemat(feat_dir / f"{subject}_{date}.mat", feats)
            if raw:
                scipy.io.savemat(raw_dir / f"{subject}_{date}.mat", signals)
    return root


if __name__ == "__main__":
    write_seed_iv(Path(sys.argv[1]))
