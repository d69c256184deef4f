"""EEG BIDS input (issue 24): datasets written by mne-bids are read into the same windows and labels
as the recordings reader gives on the same signals; the cross-subject protocol runs on them; bad
BIDS (missing events, an event past the recording's end, an unknown label, a subject without EEG)
is one line naming the file."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import error_lines, in_process

from scmm_lightning.corpora import BidsReader, CorpusError, RecordingsReader, SplitConfig, build_cache, load_cache
from scmm_lightning.corpora.bids import entity_ids

EEGMAT = Path(os.environ.get("SCMM_EEGMAT_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data" / "eegmat")
PREPARE = [sys.executable, "-m", "scmm_lightning", "prepare", "--corpus", "bids", "--no_progress"]


def cached(reader, cache_dir: Path):  # noqa: ANN001, ANN201
    return load_cache(build_cache(reader, cache_dir, progress=False))


def test_bids_fixture_reads_like_the_recordings_it_was_written_from(
    bids_root: Path, recordings_root: Path, tmp_path: Path
) -> None:
    """Same electrodes, subjects, sessions, trials, windows and labels; DE equal to float32 rounding
    (mne-bids converts FIF volts to BrainVision float32 microvolts)."""
    bids = cached(BidsReader(bids_root), tmp_path)
    own = cached(RecordingsReader(recordings_root, recordings_root / "recordings.csv"), tmp_path)
    assert bids.channel_names == own.channel_names and len(bids.channel_names) == 19  # ECG, EOG, A1 dropped
    assert bids.class_names == own.class_names == ("calm", "excited")
    for key in ("subject", "session", "trial", "window", "label"):
        assert np.array_equal(bids.metadata[key], own.metadata[key]), key
    np.testing.assert_allclose(bids.features, own.features, rtol=0, atol=1e-5)


@pytest.mark.skipif(not (EEGMAT / "Subject00_1.edf").exists(), reason=f"eegmat recordings absent at {EEGMAT}")
def test_eegmat_written_as_bids_prepares_the_same_windows_as_the_recordings_reader(tmp_path: Path) -> None:
    """The must-reach: eegmat's EDF files written as BIDS by mne-bids (rest = run 1, arithmetic = run
    2, one event per recording spanning it), read by ``prepare --corpus bids``, give bitwise the windows
    and labels the recordings reader gives on the original files."""
    import mne
    import mne_bids

    subjects = range(12)
    root = tmp_path / "bids"
    for s in subjects:
        for run, label in ((1, "rest"), (2, "arithmetic")):
            raw = mne.io.read_raw_edf(EEGMAT / f"Subject{s:02d}_{run}.edf", verbose="ERROR")
            raw.set_channel_types({"ECG ECG": "ecg"}, verbose="ERROR")
            raw.set_annotations(mne.Annotations([0.0], [raw.n_times / raw.info["sfreq"]], [label]))
            path = mne_bids.BIDSPath(subject=f"{s:02d}", task="mentalarithmetic", run=run, datatype="eeg", root=root)
            mne_bids.write_raw_bids(raw, path, overwrite=True, verbose="ERROR")
    cache = tmp_path / "cache"
    done = in_process([*PREPARE, "--root", str(root), "--task", "mentalarithmetic", "--cache_dir", str(cache)])
    assert done.returncode == 0, done.stderr[-1500:]
    (path,) = cache.glob("*.h5")
    bids = load_cache(path)
    table = tmp_path / "eegmat.csv"
    table.write_text(
        "file,subject,session,trial,label\n"
        + "".join(
            f"Subject{s:02d}_{r}.edf,{s},1,{r},{('rest', 'arithmetic')[r - 1]}\n" for s in subjects for r in (1, 2)
        )
    )
    own = cached(RecordingsReader(EEGMAT, table), tmp_path / "cache_own")
    assert bids.channel_names == own.channel_names and len(own.channel_names) == 19
    assert bids.class_names == own.class_names
    for key in ("subject", "session", "trial", "window", "label"):
        assert np.array_equal(bids.metadata[key], own.metadata[key]), key
    assert np.array_equal(bids.features, own.features)  # bitwise: the same samples through the same code


def test_cross_subject_protocol_runs_on_the_bids_dataset(bids_root: Path, tmp_path: Path) -> None:
    """BidsDataModule with a leave-subjects-out split: the probe of the raw features separates calm
    from excited (10 Hz power) on subjects it never saw."""
    from scmm_lightning.datamodules import BidsDataModule
    from scmm_lightning.evaluation import FinetuneConfig
    from scmm_lightning.evaluation.probe import FlattenFeatures
    from scmm_lightning.evaluation.protocol import run_protocol

    dm = BidsDataModule(
        root=str(bids_root), cache_dir=str(tmp_path), normalization="subject_zscore",
        split=SplitConfig(kind="leave_subjects_out", test_subjects=[3, 4]), batch_size=16,
    )  # fmt: skip
    dm.prepare_data()
    dm.setup("fit")
    assert set(dm.train_set.meta["subject"].tolist()) == {1, 2} and set(dm.test_set.meta["subject"].tolist()) == {3, 4}
    config = FinetuneConfig(folds=2, val_subjects=1)
    res = run_protocol(
        {"raw_features": FlattenFeatures(dm.num_channels, dm.num_bands)}, dm.train_set, dm.test_set, dm.num_classes,
        config, 0, ("probe",),
    )["probe"]["raw_features"]  # fmt: skip
    assert set(res) == {3, 4}
    assert min(r["balanced_accuracy"] for r in res.values()) >= 0.75


def test_subject_labels_become_integer_ids() -> None:
    assert entity_ids(["01", "02", "10"]) == {"01": 1, "02": 2, "10": 10}
    assert entity_ids(["ctrl01", "pat01", "ctrl02"]) == {"ctrl01": 1, "ctrl02": 2, "pat01": 3}
    assert entity_ids(["1", "01"]) == {"01": 1, "1": 2}  # two labels, one integer: numbered instead


@pytest.fixture
def dataset(bids_root: Path, tmp_path: Path) -> Path:
    """A private copy of the BIDS fixture to damage."""
    return Path(shutil.copytree(bids_root, tmp_path / "bids"))


def _events(root: Path, subject: int = 1, run: int = 1) -> Path:
    return root / f"sub-{subject:02d}" / "eeg" / f"sub-{subject:02d}_task-rest_run-{run}_events.tsv"


def _prepare_error(root: Path, tmp_path: Path, *extra: str) -> str:
    done = in_process([*PREPARE, "--root", str(root), "--cache_dir", str(tmp_path / "cache"), *extra])
    lines = error_lines(done.stderr)
    assert done.returncode == 2 and lines, done.stderr[-1500:]
    return "\n".join(lines)


def test_missing_events_file_is_named(dataset: Path, tmp_path: Path) -> None:
    _events(dataset, 2, 2).unlink()
    message = _prepare_error(dataset, tmp_path)
    assert "sub-02_task-rest_run-2_eeg.vhdr: no events file sub-02_task-rest_run-2_events.tsv" in message


def test_event_past_the_recording_end_names_the_events_line(dataset: Path, tmp_path: Path) -> None:
    events = _events(dataset, 3, 1)
    lines = events.read_text().splitlines()
    cells = lines[3].split("\t")
    cells[1] = "9.0"  # the third 4-s segment starts at 8 s: 8 + 9 = 17 s > 12 s
    lines[3] = "\t".join(cells)
    events.write_text("\n".join(lines) + "\n")
    message = _prepare_error(dataset, tmp_path)
    assert f"{events} line 4: stop 17.0 s is past the end of" in message and "12.000 s" in message
    assert len(message.splitlines()) == 1


def test_unknown_label_names_the_line_and_ignore_labels_skips_it(dataset: Path, tmp_path: Path) -> None:
    events = _events(dataset, 1, 2)
    with events.open("a") as f:
        f.write("11.5\t0.0\tboundary\tn/a\tn/a\n")
    message = _prepare_error(dataset, tmp_path, "--class_names", "[calm, excited]")
    assert f"{events} line 5: label 'boundary' is not in class_names" in message and "ignore_labels" in message
    message = _prepare_error(dataset, tmp_path)  # duration 0: not a segment
    assert f"{events} line 5: onset 11.5 s, duration 0.0 s" in message and "ignore_labels" in message
    reader = BidsReader(dataset, ignore_labels=["boundary"])
    assert reader.class_names == ("calm", "excited") and len(reader.segments) == 4 * 6


def test_subject_without_eeg_is_named(dataset: Path, tmp_path: Path) -> None:
    (dataset / "sub-05" / "anat").mkdir(parents=True)
    message = _prepare_error(dataset, tmp_path)
    assert "subjects ['sub-05'] have no EEG recording" in message and "subjects: ['01', '02', '03', '04']" in message
    assert len(BidsReader(dataset, subjects=["01", "02"]).segments) == 2 * 6


def test_channels_tsv_types_drop_non_eeg_channels(dataset: Path) -> None:
    """An electrode that channels.tsv types as MISC (e.g. a broken one) is not EEG: not in the montage."""
    for channels in dataset.rglob("*_channels.tsv"):
        channels.write_text(channels.read_text().replace("EEG Cz-REF\tEEG", "EEG Cz-REF\tMISC"))
    names = BidsReader(dataset).channel_names
    assert "CZ" not in names and len(names) == 18


def test_prepare_bids_help_lists_the_reader_options() -> None:
    import subprocess

    out = subprocess.run([*PREPARE, "--help"], capture_output=True, text=True).stdout
    assert "--reader.task" in out and "--reader.ignore_labels" in out and "trial_type" in out


def test_reader_errors_are_corpus_errors(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    with pytest.raises(CorpusError, match="dataset_description.json"):
        BidsReader(tmp_path / "x")
