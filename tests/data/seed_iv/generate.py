"""Write a small SEED-IV corpus in the official layout (random values, fixed seed).

    python tests/data/seed_iv/generate.py OUT_DIR

eeg_feature_smooth/{1,2,3}/{subject}_{YYYYMMDD}.mat (de_LDS, de_movingAve, psd_LDS, psd_movingAve
for trials 1..24) and eeg_raw_data/{1,2,3}/ (<initials>_eeg1..24 at 200 Hz).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import scipy.io

DATES = {1: "20160518", 2: "20160601", 3: "20160615"}


def write_seed_iv(
    root: Path, subjects: tuple[int, ...] = (1, 2), seconds: tuple[int, int] = (2, 4), seed: int = 1
) -> Path:
    rng = np.random.default_rng(seed)
    for session, date in DATES.items():
        feat_dir, raw_dir = root / "eeg_feature_smooth" / str(session), root / "eeg_raw_data" / str(session)
        feat_dir.mkdir(parents=True, exist_ok=True)
        raw_dir.mkdir(parents=True, exist_ok=True)
        for subject in subjects:
            feats, raw = {}, {}
            for t in range(1, 25):
                n_win = int(rng.integers(seconds[0], seconds[1] + 1))
                for key in ("de_LDS", "de_movingAve", "psd_LDS", "psd_movingAve"):
                    feats[f"{key}{t}"] = rng.normal(10, 2, size=(62, n_win, 5))
                raw[f"cz_eeg{t}"] = rng.normal(0, 20, size=(62, n_win * 4 * 200)).astype(np.float32)
            scipy.io.savemat(feat_dir / f"{subject}_{date}.mat", feats)
            scipy.io.savemat(raw_dir / f"{subject}_{date}.mat", raw)
    return root


if __name__ == "__main__":
    write_seed_iv(Path(sys.argv[1]))
