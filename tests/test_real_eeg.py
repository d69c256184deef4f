"""The pipeline on real EEG: PhysioNet "EEG During Mental Arithmetic Tasks" (../shared/data/eegmat,
or $SCMM_EEGMAT_DIR), read through the own-recordings reader. Skipped where the recordings are absent.

12 subjects; SubjectNN_1.edf is eyes-closed rest, SubjectNN_2.edf serial subtraction; 19 10-20
electrodes at 500 Hz plus 'EEG A2-A1' and 'ECG ECG'.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from scipy import signal, stats

from scmm_lightning.corpora import RecordingsReader, SplitConfig
from scmm_lightning.corpora.cache import load_cache
from scmm_lightning.corpora.de import differential_entropy
from scmm_lightning.datamodules import RecordingsDataModule
from scmm_lightning.evaluation import fit_linear_probe, linear_probe
from scmm_lightning.evaluation.metrics import classification_metrics
from scmm_lightning.tasks import SCMMPretraining

EEGMAT = Path(os.environ.get("SCMM_EEGMAT_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data" / "eegmat")
pytestmark = pytest.mark.skipif(
    not (EEGMAT / "Subject00_1.edf").exists(),
    reason=f"eegmat recordings absent at {EEGMAT} (set SCMM_EEGMAT_DIR to the folder of SubjectNN_M.edf)",
)
SUBJECTS = range(12)
TEST_SUBJECTS = [8, 9, 10, 11]  # train on 0-7, test on 8-11
TEN_TWENTY = {"FP1", "FP2", "F7", "F3", "FZ", "F4", "F8", "T7", "C3", "CZ", "C4", "T8", "P7", "P3", "PZ", "P4", "P8"}
TEN_TWENTY |= {"O1", "O2"}
POSTERIOR = ["P3", "P4", "O1", "O2", "PZ"]
ALPHA = 2


def edf_duration(path: Path) -> tuple[float, int]:
    """(seconds, signals) from the EDF header itself: records x record duration (bytes 236-252);
    signals without the EDF+ annotation channel (labels: 16 bytes each after the 256-byte header)."""
    data = path.read_bytes()
    records, seconds, signals = int(data[236:244]), float(data[244:252]), int(data[252:256])
    labels = [data[256 + 16 * i : 256 + 16 * (i + 1)].decode("ascii").strip() for i in range(signals)]
    return records * seconds, sum(label != "EDF Annotations" for label in labels)


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("eegmat") / "eegmat.csv"
    rows = ["file,subject,session,trial,label"]
    rows += [f"Subject{s:02d}_{p}.edf,{s},1,{p},{('rest', 'task')[p - 1]}" for s in SUBJECTS for p in (1, 2)]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def datamodule(table: Path, tmp_path_factory: pytest.TempPathFactory) -> RecordingsDataModule:
    dm = RecordingsDataModule(
        root=str(EEGMAT),
        table=str(table),
        name="eegmat",
        cache_dir=str(tmp_path_factory.mktemp("eegmat_cache")),
        split=SplitConfig(kind="leave_subjects_out", test_subjects=TEST_SUBJECTS),
        normalization="subject_zscore",
        batch_size=128,
    )
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_reader_finds_subjects_recordings_channels_and_durations(table: Path, datamodule) -> None:
    reader = RecordingsReader(EEGMAT, table)
    assert len(reader.files()) == 24 and len({s.subject for s in reader.segments}) == 12
    assert set(reader.channel_names) == TEN_TWENTY and len(reader.channel_names) == 19
    cache = load_cache(next(Path(datamodule.cache_dir).glob("eegmat-*.h5")))
    for path, header in reader.headers.items():
        assert header.sfreq == 500.0
        assert set(header.dropped) == {"A2-A1", "ECG"}
        seconds, signals = edf_duration(path)
        assert signals == 21 and header.duration == pytest.approx(seconds)
        assert (seconds > 150) if path.stem.endswith("_1") else (60 <= seconds <= 65)  # rest ~3 min, task ~1 min
        subject, part = int(path.stem[7:9]), int(path.stem[-1])
        rows = (cache.metadata["subject"] == subject) & (cache.metadata["trial"] == part)
        assert rows.sum() == math.floor(seconds)  # one DE window per whole second


def test_posterior_alpha_de_is_higher_at_rest_than_during_the_task(datamodule) -> None:
    """Alpha blocking: posterior 8-14 Hz power drops during mental arithmetic (group level)."""
    cache = datamodule.table
    post = [cache.channel_names.index(c) for c in POSTERIOR]
    diffs = []
    for s in SUBJECTS:
        rows = cache.metadata["subject"] == s
        alpha = cache.features[rows][:, post, ALPHA].mean(axis=1)
        label = cache.metadata["label"][rows]
        diffs.append(alpha[label == 0].mean() - alpha[label == 1].mean())
    diffs = np.array(diffs)
    assert diffs.mean() > 0.1  # measured 0.25 nats
    assert (diffs > 0).sum() >= 10  # measured 11 of 12
    assert stats.wilcoxon(diffs, alternative="greater").pvalue < 0.05  # measured 0.013


def test_alpha_de_agrees_with_welch_band_power() -> None:
    import mne

    raw = mne.io.read_raw_edf(EEGMAT / "Subject03_1.edf", preload=True, verbose="ERROR")
    x = raw.get_data(picks=["EEG O1", "EEG O2"], units="uV")
    fs = raw.info["sfreq"]
    de = differential_entropy(x, fs)[..., ALPHA]  # (2, windows)
    f, pxx = signal.welch(x, fs=fs, nperseg=int(2 * fs))
    band = (f >= 8) & (f <= 14)
    power = np.trapezoid(pxx[:, band], f[band], axis=1)
    mean_var = (np.exp(2 * de.astype(np.float64)) / (2 * math.pi * math.e)).mean(axis=1)
    np.testing.assert_allclose(mean_var, power, rtol=0.15)


def balanced_accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return float(classification_metrics(logits, y, 2)["balanced_accuracy"])


def test_cross_subject_rest_vs_task_beats_chance(datamodule) -> None:
    """A linear classifier on DE of 8 subjects, tested on 4 unseen ones: balanced accuracy (chance
    0.5) at least 0.60; measured 0.68."""
    train, test = datamodule.train_set, datamodule.test_set
    assert set(train.meta["subject"].tolist()).isdisjoint(test.meta["subject"].tolist())
    probe = fit_linear_probe(train.x.flatten(1), train.meta["label"], 2, l2=0.1, balanced=True)
    score = balanced_accuracy(probe(test.x.flatten(1)), test.meta["label"])
    print(f"DE probe balanced accuracy on unseen subjects: {score:.3f}")
    assert score >= 0.60


def test_scmm_encoder_pretrained_on_training_subjects_beats_chance(datamodule) -> None:
    """SCMM pre-trained on the 8 training subjects' windows (labels unused), frozen; a probe fitted on
    their embeddings, scored on the 4 unseen subjects: balanced accuracy at least 0.60."""
    L.seed_everything(0, verbose=False)
    model = SCMMPretraining(num_channels=datamodule.num_channels, temperature=0.5, sharpness=0.5)
    trainer = L.Trainer(
        max_epochs=8,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule.train_dataloader())
    res = linear_probe(model.encoder, datamodule.train_set, datamodule.test_set, 2, l2=0.1, balanced=True)
    assert sorted(res) == TEST_SUBJECTS
    pooled = np.mean([r["balanced_accuracy"] for r in res.values()])
    print(f"SCMM probe balanced accuracy on unseen subjects: {pooled:.3f}")
    assert pooled >= 0.60, {s: round(r["balanced_accuracy"], 3) for s, r in res.items()}


def test_edf_header_parser_reads_what_mne_reads() -> None:
    """The independent header parser above agrees with MNE on one file (guards the parser)."""
    import mne

    raw = mne.io.read_raw_edf(EEGMAT / "Subject00_2.edf", verbose="ERROR")
    seconds, signals = edf_duration(EEGMAT / "Subject00_2.edf")
    assert signals == len(raw.ch_names) and seconds == pytest.approx(raw.n_times / raw.info["sfreq"])
