"""Fixture: a small 'own recordings' corpus as FIF files (MNE's native format) plus its table.

4 subjects x 2 runs; each run is 12 s at 250 Hz cut by the table into three 4-s labelled segments
(trials 1-6 per subject, labels alternating calm / excited). Channel names are written the way
clinical exports spell them ('EEG Fp1-REF', old 10-20 'T3', ...) in a shuffled order, with an ECG
and an EOG channel and an ear reference 'A1' that the reader must drop. 'excited' segments carry
more 8-14 Hz power. The exact microvolt signals written are returned for independent checks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SFREQ = 250.0
RUN_SECONDS = 12.0
SEGMENT_SECONDS = 4.0
SUBJECTS = (1, 2, 3, 4)
CLASSES = ("calm", "excited")
# file channel name -> registry name (old 10-20 names on purpose)
EEG_NAMES = {
    "EEG Fp1-REF": "FP1", "EEG Fp2-REF": "FP2", "EEG F7-REF": "F7", "EEG F3-REF": "F3", "EEG Fz-REF": "FZ",
    "EEG F4-REF": "F4", "EEG F8-REF": "F8", "EEG T3-REF": "T7", "EEG C3-REF": "C3", "EEG Cz-REF": "CZ",
    "EEG C4-REF": "C4", "EEG T4-REF": "T8", "EEG T5-REF": "P7", "EEG P3-REF": "P3", "EEG Pz-REF": "PZ",
    "EEG P4-REF": "P4", "EEG T6-REF": "P8", "EEG O1-REF": "O1", "EEG O2-REF": "O2",
}  # fmt: skip
EXTRA = {"ECG": "ecg", "EOG left": "eog", "A1": "eeg"}


def segment_label(trial: int) -> str:
    return CLASSES[(trial - 1) % 2]


def write_recordings(root: Path, seed: int = 0) -> tuple[Path, dict[tuple[int, int], np.ndarray]]:
    """Write the corpus under ``root``; return the table path and {(subject, trial): (19, n) uV in
    registry-name order of EEG_NAMES.values()} as written."""
    import mne

    rng = np.random.default_rng(seed)
    names = list(EEG_NAMES) + list(EXTRA)
    order = rng.permutation(len(names))
    t = np.arange(int(RUN_SECONDS * SFREQ)) / SFREQ
    seg = int(SEGMENT_SECONDS * SFREQ)
    truth: dict[tuple[int, int], np.ndarray] = {}
    rows = ["file,subject,session,trial,label,start,stop"]
    for subject in SUBJECTS:
        folder = root / f"sub-{subject:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for run in (1, 2):
            uv = rng.normal(0.0, 10.0, size=(len(names), len(t)))
            for k in range(3):
                trial = 3 * (run - 1) + k + 1
                gain = 25.0 if segment_label(trial) == "excited" else 5.0
                span = slice(k * seg, (k + 1) * seg)
                uv[: len(EEG_NAMES), span] += gain * np.sin(2 * np.pi * 10.0 * t[span] + rng.uniform(0, 6.28))
                truth[(subject, trial)] = uv[: len(EEG_NAMES), span].copy()
                start = "" if k == 0 else f"{k * SEGMENT_SECONDS:g}"
                stop = "" if k == 2 else f"{(k + 1) * SEGMENT_SECONDS:g}"
                rows.append(
                    f"sub-{subject:02d}/run{run}_raw.fif,{subject},1,{trial},{segment_label(trial)},{start},{stop}"
                )
            types = ["eeg"] * len(EEG_NAMES) + list(EXTRA.values())
            info = mne.create_info([names[i] for i in order], SFREQ, [types[i] for i in order])
            raw = mne.io.RawArray(uv[order] * 1e-6, info, verbose="ERROR")  # FIF stores volts
            raw.save(folder / f"run{run}_raw.fif", overwrite=True, verbose="ERROR")
    table = root / "recordings.csv"
    table.write_text("\n".join(rows) + "\n")
    return table, truth


if __name__ == "__main__":
    import sys

    print(write_recordings(Path(sys.argv[1]))[0])
