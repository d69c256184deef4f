"""Fixture: the 'own recordings' fixture corpus written as an EEG BIDS dataset by mne-bids.

Each FIF run of ``tests/data/recordings`` (4 subjects x 2 runs of 12 s, three labelled 4-s segments
each) becomes ``sub-0S/eeg/sub-0S_task-rest_run-R_eeg.vhdr`` (BrainVision, written by mne-bids
through pybv: BIDS EEG does not take FIF), its table rows become the run's ``events.tsv`` (onset,
duration, trial_type) and its channel types (EEG, ECG, EOG) its ``channels.tsv``. The signals are
the recordings fixture's, so the two readers can be compared window by window.
"""

from __future__ import annotations

import csv
from pathlib import Path


def write_bids(root: Path, recordings_root: Path, table: Path | None = None) -> Path:
    """Write the BIDS dataset under ``root`` from the recordings fixture under ``recordings_root``."""
    import mne
    import mne_bids

    table = table or recordings_root / "recordings.csv"
    rows: dict[str, list[dict[str, str]]] = {}
    for row in csv.DictReader(table.open()):
        rows.setdefault(row["file"], []).append(row)
    for file, segments in rows.items():
        raw = mne.io.read_raw_fif(recordings_root / file, preload=True, verbose="ERROR")
        length = raw.n_times / raw.info["sfreq"]
        onsets = [float(s["start"] or 0.0) for s in segments]
        stops = [float(s["stop"]) if s["stop"] else length for s in segments]
        raw.set_annotations(
            mne.Annotations(onsets, [b - a for a, b in zip(onsets, stops)], [s["label"] for s in segments])
        )
        run = int(Path(file).stem.removeprefix("run").removesuffix("_raw"))
        path = mne_bids.BIDSPath(
            subject=f"{int(segments[0]['subject']):02d}", task="rest", run=run, datatype="eeg", root=root
        )
        mne_bids.write_raw_bids(raw, path, format="BrainVision", allow_preload=True, overwrite=True, verbose="ERROR")
    return root


if __name__ == "__main__":
    import sys

    print(write_bids(Path(sys.argv[1]), Path(sys.argv[2])))
