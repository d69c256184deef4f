"""Own recordings (any MNE-readable file + a table) through the real reading code, on FIF fixtures."""

from __future__ import annotations

import csv
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import signal

from scmm_lightning.corpora import CorpusError, RecordingsReader, SplitConfig
from scmm_lightning.corpora.cache import build_cache, load_cache
from scmm_lightning.corpora.channels import canonical
from scmm_lightning.datamodules import RecordingsDataModule
from scmm_lightning.datamodules.dataset import WindowDataset
from scmm_lightning.evaluation import FinetuneConfig, finetune_protocol, fit_linear_probe, linear_probe
from scmm_lightning.evaluation.metrics import classification_metrics

sys.path.insert(0, str(Path(__file__).resolve().parent / "data" / "recordings"))
import generate as fixture  # noqa: E402

BANDS = ((1, 4), (4, 8), (8, 14), (14, 31), (31, 50))


def de_by_hand(x: np.ndarray, sfreq: float) -> np.ndarray:
    """(C, n) -> (W, C, 5): a second DE implementation, one window and one band at a time."""
    n_win = x.shape[1] // int(sfreq)
    out = np.zeros((n_win, x.shape[0], len(BANDS)))
    for b, (lo, hi) in enumerate(BANDS):
        sos = signal.butter(4, [lo, min(hi, 0.99 * sfreq / 2)], btype="bandpass", fs=sfreq, output="sos")
        y = signal.sosfiltfilt(sos, x, axis=1)
        for w in range(n_win):
            seg = y[:, w * int(sfreq) : (w + 1) * int(sfreq)]
            out[w, :, b] = 0.5 * np.log(2 * math.pi * math.e * seg.var(axis=1))
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("own")
    table, truth = fixture.write_recordings(root)
    return root, table, truth


def copy_corpus(corpus, tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "own"
    shutil.copytree(corpus[0], root)
    return root, root / "recordings.csv"


def test_channel_names_are_normalised_to_the_registry() -> None:
    assert canonical("EEG Fp1-REF") == "FP1"
    assert canonical("EEG A2-A1") == "A2"
    assert [canonical(n) for n in ("T3", "T4", "T5", "T6")] == ["T7", "T8", "P7", "P8"]
    assert canonical("eeg_fz-le") == "FZ"
    assert canonical("Chan 7", {"chan 7": "cz"}) == "CZ"


def test_reader_matches_an_independent_de_of_the_written_signals(corpus) -> None:
    root, table, truth = corpus
    reader = RecordingsReader(root, table, name="own")
    assert reader.channel_names == tuple(fixture.EEG_NAMES.values())  # registry (SEED) order, 19 electrodes
    assert reader.class_names == fixture.CLASSES
    header = reader.headers[root / "sub-01" / "run1_raw.fif"]
    assert set(header.dropped) == {"ECG", "EOG left", "A1"}
    assert header.sfreq == fixture.SFREQ and header.duration == fixture.RUN_SECONDS
    recs = list(reader.sessions())
    assert [r.subject for r in recs] == list(fixture.SUBJECTS)
    written_order = list(fixture.EEG_NAMES.values())
    for rec in recs:
        for trial in range(1, 7):
            rows = rec.trial == trial
            assert rows.sum() == fixture.SEGMENT_SECONDS  # one 1-s window per second of the segment
            assert np.all(rec.window[rows] == np.arange(4))
            assert np.all(rec.label[rows] == fixture.CLASSES.index(fixture.segment_label(trial)))
            x = truth[(rec.subject, trial)][[written_order.index(c) for c in reader.channel_names]]
            np.testing.assert_allclose(rec.features[rows], de_by_hand(x, fixture.SFREQ), atol=2e-3)


def test_resampling_keeps_windows_and_band_power(corpus) -> None:
    root, table, _ = corpus
    native = next(RecordingsReader(root, table).sessions())
    resampled = next(RecordingsReader(root, table, resample=128.0).sessions())
    assert resampled.features.shape == native.features.shape
    # the same band power at the new rate inside each segment (at a segment's ends the DE of a 1-s
    # window is dominated by the band filter's edge transient, which depends on the exact samples)
    interior = (native.window == 1) | (native.window == 2)
    diff = np.abs(resampled.features - native.features)
    assert diff[interior][..., 1:].max() < 0.05
    assert diff[..., 2].max() < 0.25  # alpha, the fixture's 10 Hz signal, in every window
    assert diff.mean() < 0.1


def test_table_rows_default_session_and_trial(corpus, tmp_path: Path) -> None:
    root, _, _ = corpus
    table = tmp_path / "t.tsv"
    table.write_text(
        "file\tsubject\tlabel\tstop\n"
        f"{root}/sub-01/run1_raw.fif\t7\texcited\t4\n"
        f"{root}/sub-01/run2_raw.fif\t7\tcalm\t\n"
    )
    rec = next(RecordingsReader(root, table).sessions())
    assert (rec.subject, rec.session) == (7, 1)
    assert np.bincount(rec.trial).tolist() == [0, 4, 12]  # trial = rank in the table; stop empty = end of file
    assert rec.label[rec.trial == 1].tolist() == [1] * 4  # classes sorted: calm=0, excited=1


def test_bad_tables_and_files_name_the_line_or_file(corpus, tmp_path: Path) -> None:
    root, table = copy_corpus(corpus, tmp_path)
    lines = table.read_text().splitlines()

    def check(body: list[str], *expected: str) -> None:
        bad = tmp_path / "bad.csv"
        bad.write_text("\n".join(body) + "\n")
        with pytest.raises(CorpusError) as err:
            list(RecordingsReader(root, bad).sessions())
        for text in expected:
            assert text in str(err.value), str(err.value)

    check([lines[0], lines[1], "sub-09/gone.fif,9,1,1,calm,,"], "line 3", "gone.fif", "does not exist")
    check([lines[0], lines[1], lines[2].replace("excited", "")], "line 3", "empty 'label'")
    check([lines[0], lines[1], lines[2].replace(",4,8", ",4,4.5")], "line 3", "shorter than one 1.0 s window")
    check([lines[0], lines[1], lines[1].replace(",1,calm", ",1,excited")], "line 3", "repeats line 2")
    check(["file,label", lines[1]], "columns ['subject'] missing")
    check([lines[0], lines[1].replace(",1,1,1,", ",sub-01,1,1,")], "line 2", "subject 'sub-01' is not an integer")
    check([lines[0], lines[1].replace(",,4", ",5,4")], "line 2", "stop 4.0 s is not after start 5.0 s")
    (root / "sub-01" / "broken_raw.fif").write_bytes(b"\x00not a fif file" * 10)
    check([lines[0], "sub-01/broken_raw.fif,1,1,1,calm,,"], "broken_raw.fif", "MNE cannot read")


def test_unmatched_channels_name_the_file(tmp_path: Path) -> None:
    import mne

    info = mne.create_info(["Chan1", "Chan2", "Cz"], 100.0, "eeg")
    mne.io.RawArray(np.random.default_rng(0).normal(size=(3, 500)) * 1e-6, info, verbose="ERROR").save(
        tmp_path / "odd_raw.fif", verbose="ERROR"
    )
    (tmp_path / "t.csv").write_text("file,subject,label\nodd_raw.fif,1,a\n")
    with pytest.raises(CorpusError, match=r"odd_raw.fif: channels \['Chan1', 'Chan2'\] match no 10-10"):
        _ = RecordingsReader(tmp_path, tmp_path / "t.csv").channel_names
    with pytest.raises(CorpusError, match=r"odd_raw.fif: electrodes \['PZ'\] of the montage are missing"):
        _ = RecordingsReader(tmp_path, tmp_path / "t.csv", montage=["Cz", "Pz"]).channel_names
    reader = RecordingsReader(tmp_path, tmp_path / "t.csv", channel_aliases={"Chan1": "C3", "Chan2": "C4"})
    assert reader.channel_names == ("C3", "CZ", "C4")


def test_electrodes_missing_from_some_recordings_are_left_out_with_a_warning(tmp_path: Path) -> None:
    import mne

    rng = np.random.default_rng(0)
    for name, chans in (("a_raw.fif", ["Cz", "Pz", "Oz"]), ("b_raw.fif", ["EEG Pz", "EEG Cz"])):
        info = mne.create_info(chans, 100.0, "eeg")
        mne.io.RawArray(rng.normal(size=(len(chans), 300)) * 1e-6, info, verbose="ERROR").save(
            tmp_path / name, verbose="ERROR"
        )
    (tmp_path / "t.csv").write_text("file,subject,label\na_raw.fif,1,x\nb_raw.fif,2,y\n")
    reader = RecordingsReader(tmp_path, tmp_path / "t.csv")
    with pytest.warns(UserWarning, match=r"electrodes \['OZ'\] are not in every recording"):
        assert reader.channel_names == ("CZ", "PZ")
    recs = list(reader.sessions())
    assert [r.features.shape for r in recs] == [(3, 2, 5), (3, 2, 5)]


def test_cache_round_trip_and_reuse(corpus, tmp_path: Path) -> None:
    root, table = copy_corpus(corpus, tmp_path)
    reader = RecordingsReader(root, table, name="own")
    path = build_cache(reader, tmp_path / "cache", progress=False)
    loaded = load_cache(path)
    direct = list(RecordingsReader(root, table, name="own").sessions())
    np.testing.assert_array_equal(loaded.features, np.concatenate([r.features for r in direct]))
    assert loaded.channel_names == reader.channel_names and loaded.class_names == fixture.CLASSES
    assert build_cache(RecordingsReader(root, table, name="own"), tmp_path / "cache") == path
    table.write_text(table.read_text().replace("excited", "aroused"))  # the table is part of the key
    assert build_cache(RecordingsReader(root, table, name="own"), tmp_path / "cache", progress=False) != path


def test_datamodule_leave_subjects_out_and_subject_normalisation(corpus, tmp_path: Path) -> None:
    root, table, _ = corpus
    dm = RecordingsDataModule(
        root=str(root),
        table=str(table),
        cache_dir=str(tmp_path),
        split=SplitConfig(kind="leave_subjects_out", test_subjects=[3, 4]),
        normalization="subject_zscore",
        batch_size=8,
    )
    assert (dm.num_channels, dm.num_bands, dm.num_classes) == (19, 5, 2)
    dm.setup("fit")
    train_subjects = set(dm.train_set.meta["subject"].tolist())
    test_subjects = set(dm.test_set.meta["subject"].tolist())
    assert train_subjects == {1, 2} and test_subjects == {3, 4}
    raw = load_cache(next(tmp_path.glob("recordings-*.h5")))
    for ds in (dm.train_set, dm.test_set):
        for s in set(ds.meta["subject"].tolist()):
            x = raw.features[raw.metadata["subject"] == s].astype(np.float64)
            expected = (x - x.mean(0)) / x.std(0)
            got = ds.x[ds.meta["subject"] == s].numpy()
            np.testing.assert_allclose(got, expected, atol=1e-4)
    with pytest.raises(ValueError, match="test_subjects"):
        RecordingsDataModule(root=str(root), table=str(table), cache_dir=str(tmp_path), split=SplitConfig(
            kind="leave_subjects_out", test_subjects=[1, 2, 3, 4])).setup("fit")  # fmt: skip


def toy_sets(seed: int = 0) -> tuple[WindowDataset, WindowDataset]:
    g = torch.Generator().manual_seed(seed)

    def make(subjects: list[int]) -> WindowDataset:
        n = 40 * len(subjects)
        y = torch.arange(n) % 2
        x = torch.randn(n, 3, 2, generator=g) + y[:, None, None] * 1.5
        meta = {
            "subject": torch.tensor(subjects).repeat_interleave(40),
            "session": torch.ones(n, dtype=torch.long),
            "trial": (torch.arange(n) % 40) // 10 + 1,
            "window": torch.arange(n) % 10,
            "label": y,
        }
        return WindowDataset(x.numpy(), {k: v.numpy() for k, v in meta.items()})

    return make([1, 2, 3]), make([8, 9])


def test_cross_subject_probe_is_one_probe_on_all_training_subjects() -> None:
    train, test = toy_sets()
    flat = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Identity())
    flat.anchor = torch.nn.Parameter(torch.zeros(1))  # embed() reads the device off a parameter
    got = linear_probe(flat, train, test, 2, l2=1e-3)
    probe = fit_linear_probe(train.x.flatten(1), train.meta["label"], 2)
    assert sorted(got) == [8, 9]
    for s in (8, 9):
        rows = test.meta["subject"] == s
        want = classification_metrics(probe(test.x[rows].flatten(1)), test.meta["label"][rows], 2)
        assert got[s]["accuracy"] == pytest.approx(want["accuracy"])
        assert got[s]["accuracy"] > 0.8


def test_cross_subject_finetuning_validates_on_held_out_training_subjects() -> None:
    train, test = toy_sets()
    encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6, 4))
    encoder.out_features = 4
    res = finetune_protocol(
        encoder,
        train,
        test,
        2,
        FinetuneConfig(epochs=3, steps=20, batch_size=16, val_subjects=1, selection="holdout"),
        0,
    )
    assert sorted(res) == [8, 9]
    assert res[8]["n_finetune"] == 80 and res[8]["n_val"] == 40 and res[8]["n_test"] == 40  # subject 3 validates
    with pytest.raises(ValueError, match="val_subjects=3"):
        finetune_protocol(encoder, train, test, 2, FinetuneConfig(epochs=1, val_subjects=3, selection="holdout"), 0)
    # a list names the validating subjects (rotated over folds by benchmarks/real_eeg.py)
    from scmm_lightning.evaluation.protocol import protocol_parts

    for val_subjects, validating in [(1, {3}), (2, {2, 3}), ([1], {1}), ([3, 1], {1, 3})]:
        (part,) = protocol_parts(train, test, FinetuneConfig(val_subjects=val_subjects, selection="holdout"))
        assert set(train.meta["subject"][part.val].tolist()) == validating
        assert set(train.meta["subject"][part.fit].tolist()) == {1, 2, 3} - validating
    for bad in ([8], [1, 2, 3], 0, []):
        with pytest.raises(ValueError, match="of the training subjects"):
            protocol_parts(train, test, FinetuneConfig(val_subjects=bad, selection="holdout"))


def test_prepare_command(corpus, tmp_path: Path) -> None:
    root, table, _ = corpus
    cmd = [sys.executable, "-m", "scmm_lightning", "prepare", "--corpus", "recordings", "--root", str(root)]
    out = subprocess.run(
        [*cmd, "--table", str(table), "--name", "own", "--cache_dir", str(tmp_path), "--no_progress"]
        + ["--channel_aliases", "{Fp1: FP1}", "--raw.window_seconds", "1.0"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "subjects:  4" in out and "trials:    24" in out and "windows:   96" in out
    assert "features:  (19, 5)" in out and "calm=48, excited=48" in out
    bad = subprocess.run([*cmd, "--table", str(tmp_path / "none.csv")], capture_output=True, text=True)
    assert bad.returncode == 2 and "none.csv does not exist" in bad.stderr
    bad = subprocess.run([*cmd, "--table", str(table), "--channel_aliases", "Fp1"], capture_output=True, text=True)
    assert bad.returncode == 2 and "channel_aliases" in bad.stderr and "Mapping" in bad.stderr


def test_recordings_as_the_source_of_a_cross_corpus_run(corpora_env: Path, tmp_path: Path) -> None:
    """The reverse direction through the real CLI: pre-train on own recordings, evaluate on SEED
    (fixture) on the 19 shared electrodes."""
    from cli_helpers import run_fit

    config = Path(__file__).resolve().parents[1] / "experiments" / "own_recordings.yaml"
    source = "scmm_lightning.datamodules.RecordingsDataModule"
    montage = "[FP1, FP2, F7, F3, FZ, F4, F8, T7, C3, CZ, C4, T8, P7, P3, PZ, P4, P8, O1, O2]"
    run_fit(
        config,
        tmp_path,
        "--trainer.fast_dev_run=true",
        f"--data.init_args.source={source}",
        "--data.init_args.source.init_args.montage", montage,
        "--data.init_args.source.init_args.batch_size=16",
        "--data.init_args.target=scmm_lightning.datamodules.SeedDataModule",
        "--data.init_args.target.init_args.channels", montage,
        "--data.init_args.target.init_args.split.kind=trial",
        "--data.init_args.target.init_args.split.train_trials=9",
        "--data.init_args.target.init_args.sessions=[1]",
    )  # fmt: skip
    rows = list(csv.DictReader(next(tmp_path.rglob("transfer_results.csv")).open()))
    assert {r["method"] for r in rows} == {"pretrained", "random_init", "raw_features"}


def test_own_recordings_config_with_a_cross_subject_split(corpora_env: Path, tmp_path: Path) -> None:
    """The shipped config switched to leave-subjects-out: the probe and the fine-tuning train on
    subjects 1-2 and report subjects 3-4 only."""
    from cli_helpers import run_fit

    config = Path(__file__).resolve().parents[1] / "experiments" / "own_recordings.yaml"
    run_fit(
        config,
        tmp_path,
        "--trainer.fast_dev_run=true",
        "--data.init_args.source.init_args.batch_size=32",
        "--data.init_args.target.init_args.split.kind=leave_subjects_out",
        "--data.init_args.target.init_args.split.test_subjects=[3, 4]",
        "--data.init_args.target.init_args.normalization=subject_zscore",
    )
    rows = list(csv.DictReader(next(tmp_path.rglob("transfer_results.csv")).open()))
    assert sorted({int(r["subject"]) for r in rows}) == [3, 4]
    # fast_dev_run's quick protocol: one hold-out (subject 1 fine-tunes, 6 trials x 4 windows; subject 2
    # validates); the full protocol cross-validates over both (tests/test_selection.py)
    assert {(r["n_finetune"], r["n_val"], r["folds"], r["n_test"]) for r in rows} == {("24", "24", "1", "24")}
