from __future__ import annotations

import numpy as np
import pytest

from scmm_lightning.corpora import DEAP_32, SEED_62, SplitConfig, SyntheticCorpusSpec, generate_synthetic_corpus
from scmm_lightning.datamodules import SyntheticEEGDataModule


def corpus(**kw):
    args = dict(
        channels=SEED_62,
        num_classes=3,
        num_subjects=4,
        num_sessions=2,
        trials_per_session=6,
        windows_per_trial=30,
        seed=0,
    )
    args.update(kw)
    channels = args.pop("channels")
    return generate_synthetic_corpus(channels, SyntheticCorpusSpec(**args))


def test_shapes_hierarchy_and_balanced_labels() -> None:
    x, meta = corpus()
    assert x.shape == (4 * 2 * 6 * 30, 62, 5) and x.dtype == np.float32
    assert set(np.unique(meta["subject"])) == {1, 2, 3, 4}  # numbered from 1, as in the real corpora
    for s in range(1, 5):
        for e in range(1, 3):
            sel = (meta["subject"] == s) & (meta["session"] == e) & (meta["window"] == 0)
            assert np.bincount(meta["label"][sel]).tolist() == [2, 2, 2]
    # one label per trial
    key = meta["subject"] * 100 + meta["session"] * 10 + meta["trial"]
    for k in np.unique(key):
        assert len(np.unique(meta["label"][key == k])) == 1


def test_deterministic_from_seed() -> None:
    a, _ = corpus()
    b, _ = corpus()
    c, _ = corpus(seed=1)
    assert np.array_equal(a, b) and not np.allclose(a, c)


def test_neighbouring_windows_are_more_similar_than_distant_ones() -> None:
    x, meta = corpus(ar_coef=0.9, noise_std=0.1)
    t = x.reshape(4, 2, 6, 30, -1)
    d1 = np.mean((t[:, :, :, 1:] - t[:, :, :, :-1]) ** 2)
    d20 = np.mean((t[:, :, :, 20:] - t[:, :, :, :-20]) ** 2)
    assert d1 < 0.5 * d20


def test_class_patterns_and_subject_offsets_are_present() -> None:
    x, meta = corpus(class_strength=1.0, subject_std=0.8)
    flat = x.reshape(len(x), -1)
    # class means differ far more than their standard error
    means = np.stack([flat[meta["label"] == k].mean(0) for k in range(3)])
    assert np.linalg.norm(means[0] - means[1]) > 5 * flat.std() / np.sqrt((meta["label"] == 0).sum()) * np.sqrt(
        flat.shape[1]
    )
    # within-subject spread smaller than across-subject spread of means
    subj = np.stack([flat[meta["subject"] == s].mean(0) for s in range(1, 5)])
    assert subj.std(0).mean() > 0.4


def test_two_corpora_share_patterns_on_shared_electrodes() -> None:
    a, ma = corpus(
        class_strength=2.0,
        corpus_shift=0.0,
        subject_std=0.0,
        session_std=0.0,
        trial_std=0.0,
        noise_std=0.0,
        drift_std=0.0,
    )
    b, mb = corpus(
        channels=DEAP_32,
        num_classes=2,
        class_strength=2.0,
        corpus_shift=0.0,
        subject_std=0.0,
        session_std=0.0,
        trial_std=0.0,
        noise_std=0.0,
        drift_std=0.0,
        seed=5,
    )
    assert b.shape[1:] == (32, 5)
    idx = [SEED_62.index(n) for n in DEAP_32]
    a0 = a[ma["label"] == 0][0][idx]
    b0 = b[mb["label"] == 0][0]
    np.testing.assert_allclose(a0, b0, rtol=1e-5)  # same class, same electrode, no nuisances


def test_datamodule_normalises_on_training_split_only() -> None:
    dm = SyntheticEEGDataModule(
        num_subjects=2,
        trials_per_session=5,
        windows_per_trial=10,
        batch_size=8,
        split=SplitConfig(kind="trial", train_trials=3),
    )
    dm.setup("fit")
    tr = dm.train_set.x.numpy()
    assert tr.min() == pytest.approx(0.0, abs=1e-6) and tr.max() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(tr.min(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(tr.max(axis=0), 1, atol=1e-6)
    te = dm.test_set.x.numpy()
    assert te.min() < 0 or te.max() > 1  # test statistics were not used
    assert set(dm.train_set.meta["trial"].unique().tolist()) == {1, 2, 3}
    assert set(dm.test_set.meta["trial"].unique().tolist()) == {4, 5}
    batch = next(iter(dm.train_dataloader()))
    assert batch["x"].shape == (8, 62, 5) and batch["label"].shape == (8,)


def test_batch_size_larger_than_data_is_a_clear_error() -> None:
    dm = SyntheticEEGDataModule(num_subjects=1, trials_per_session=3, windows_per_trial=2, batch_size=64)
    dm.setup("fit")
    with pytest.raises(ValueError, match="batch_size"):
        dm.train_dataloader()


@pytest.mark.parametrize("n,k", [(12, 4), (13, 4), (5, 2), (7, 7)])
def test_subject_folds_test_every_subject_once(n: int, k: int) -> None:
    from scmm_lightning.corpora import subject_folds

    subjects = list(range(3, 3 + n))[::-1]
    folds = subject_folds(subjects, k)
    assert len(folds) == k and sorted(s for f in folds for s in f) == sorted(subjects)  # each exactly once
    assert max(map(len, folds)) - min(map(len, folds)) <= 1
    assert [s for f in folds for s in f] == sorted(subjects)  # contiguous groups of the sorted ids, in order
    if (n, k) == (13, 4):  # hand-written: the one extra subject goes to the first fold
        assert folds == [[3, 4, 5, 6], [7, 8, 9], [10, 11, 12], [13, 14, 15]]
    with pytest.raises(ValueError, match="n_folds"):
        subject_folds(subjects, n + 1)


@pytest.mark.parametrize("n,k,per_fold", [(12, 4, 2), (13, 4, 1), (7, 3, 2)])
def test_rotating_validation_subjects_are_training_subjects_that_change_by_fold(n: int, k: int, per_fold: int) -> None:
    from scmm_lightning.corpora import rotating_validation, subject_folds

    subjects = list(range(1, n + 1))
    folds = subject_folds(subjects, k)
    validation = rotating_validation(folds, per_fold)
    assert len(validation) == k
    for fold, val in zip(folds, validation):
        assert len(val) == per_fold and not set(val) & set(fold)  # validates on training subjects only
    distinct = {s for v in validation for s in v}
    assert len(distinct) == k * per_fold  # no subject validates twice: settings are not chosen on one person
    if (n, k, per_fold) == (12, 4, 2):
        assert validation == [[4, 5], [7, 8], [10, 11], [1, 2]]
    with pytest.raises(ValueError, match="per_fold"):
        rotating_validation(folds, n)
