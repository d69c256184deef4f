from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scmm_lightning.cli import main
from scmm_lightning.corpora import DEAP_32, SEED_62, CorpusError, SplitConfig
from scmm_lightning.corpora.cache import load_cache
from scmm_lightning.datamodules import SeedDataModule, SeedIVDataModule


def trials_of(ds) -> set[tuple[int, int, int]]:
    m = ds.meta
    return set(zip(m["subject"].tolist(), m["session"].tolist(), m["trial"].tolist()))


def test_trial_split_first_nine_train_last_six_test(seed_root: Path, tmp_path: Path) -> None:
    dm = SeedDataModule(
        root=str(seed_root), cache_dir=str(tmp_path), batch_size=16, split=SplitConfig(kind="trial", train_trials=9)
    )
    dm.prepare_data()
    dm.setup("fit")
    train, test = trials_of(dm.train_set), trials_of(dm.test_set)
    assert not train & test
    assert {t for _, _, t in train} == set(range(1, 10)) and {t for _, _, t in test} == set(range(10, 16))
    assert len(train) + len(test) == 2 * 3 * 15
    x = dm.train_set.x.numpy()
    np.testing.assert_allclose(x.min(0), 0, atol=1e-6)
    np.testing.assert_allclose(x.max(0), 1, atol=1e-6)
    assert dm.num_channels == 62 and dm.num_classes == 3 and dm.num_bands == 5
    batch = next(iter(dm.train_dataloader()))
    assert batch["x"].shape == (16, 62, 5)


def test_loso_cross_session_subjects_and_montage(seed_root: Path, tmp_path: Path) -> None:
    dm = SeedDataModule(
        root=str(seed_root),
        cache_dir=str(tmp_path),
        split=SplitConfig(kind="loso", test_subject=2),
        channels=list(DEAP_32),
        normalization="none",
    )
    dm.setup("fit")
    assert set(dm.train_set.meta["subject"].tolist()) == {1} and set(dm.test_set.meta["subject"].tolist()) == {2}
    assert dm.num_channels == 32 and dm.train_set.x.shape[1:] == (32, 5)
    table = load_cache(next(Path(tmp_path).glob("seed-*.h5")))
    idx = [SEED_62.index(n) for n in DEAP_32]
    np.testing.assert_allclose(dm.train_set.x.numpy(), table.features[table.metadata["subject"] == 1][:, idx])
    cs = SeedDataModule(
        root=str(seed_root),
        cache_dir=str(tmp_path),
        subjects=[1],
        split=SplitConfig(kind="cross_session", train_sessions=[1, 2], test_sessions=[3]),
    )
    cs.setup("fit")
    assert set(cs.train_set.meta["session"].tolist()) == {1, 2} and set(cs.test_set.meta["session"].tolist()) == {3}
    assert set(cs.train_set.meta["subject"].tolist()) == {1}


def test_label_map_is_configuration(seed_iv_root: Path, tmp_path: Path) -> None:
    # SEED-IV neutral/sad/happy -> SEED neutral(1)/negative(0)/positive(2); fear (2) dropped
    dm = SeedIVDataModule(
        root=str(seed_iv_root), cache_dir=str(tmp_path), label_map={0: 1, 1: 0, 3: 2}, split=SplitConfig(kind="none")
    )
    dm.setup("fit")
    assert dm.num_classes == 3 and set(dm.train_set.meta["label"].tolist()) == {0, 1, 2}
    table = load_cache(next(Path(tmp_path).glob("seed_iv-*.h5")))
    assert len(dm.train_set) == int((table.metadata["label"] != 2).sum())
    with pytest.raises(ValueError, match="label_map keys"):
        bad = SeedIVDataModule(root=str(seed_iv_root), cache_dir=str(tmp_path), label_map={9: 0})
        bad.setup("fit")


def test_root_defaults_to_env(seed_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCMM_DATA_ROOT", str(seed_root.parent))
    monkeypatch.setenv("SCMM_CACHE_DIR", str(tmp_path))
    dm = SeedDataModule()
    with pytest.raises(CorpusError, match="SEED"):
        dm.prepare_data()  # $SCMM_DATA_ROOT/SEED does not exist: the fixture dir has another name
    (seed_root.parent / "SEED").symlink_to(seed_root, target_is_directory=True)
    try:
        dm.prepare_data()
        assert list(tmp_path.glob("seed-*.h5"))
    finally:
        (seed_root.parent / "SEED").unlink()


def test_cli_pretrains_on_seed_fixture(seed_root: Path, tmp_path: Path) -> None:
    main(
        [
            "fit",
            "--config",
            "tests/configs/tiny.yaml",
            "--data",
            "scmm_lightning.datamodules.SeedDataModule",
            "--data.root",
            str(seed_root),
            "--data.cache_dir",
            str(tmp_path / "cache"),
            "--data.batch_size",
            "32",
            "--data.split.kind",
            "none",
            "--trainer.fast_dev_run",
            "true",
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
        ]
    )


def test_multi_source_concatenates_sources_and_keeps_them_apart(
    seed_root: Path, seed_iv_root: Path, deap_root: Path, tmp_path: Path
) -> None:
    """SEED + SEED-IV fixture corpora on DEAP's 32 electrodes: the union of both training splits
    (each normalised by its own settings), subjects renumbered apart, labels hidden; a montage
    mismatch names the source and the fix."""
    from scmm_lightning.datamodules import CrossCorpusDataModule, DeapDataModule, MultiSourceDataModule

    def seed(cls, root):
        return cls(root=str(root), cache_dir=str(tmp_path), channels=list(DEAP_32), sessions=[1], batch_size=8)

    a, b = seed(SeedDataModule, seed_root), seed(SeedIVDataModule, seed_iv_root)
    multi = MultiSourceDataModule([a, b], batch_size=16)
    multi.setup("fit")
    expected_x = np.concatenate([a.train_set.x.numpy(), b.train_set.x.numpy()])
    np.testing.assert_array_equal(multi.train_set.x.numpy(), expected_x)
    subjects = multi.train_set.meta["subject"].numpy()
    na = len(a.train_set)
    np.testing.assert_array_equal(subjects[:na], a.train_set.meta["subject"].numpy())
    np.testing.assert_array_equal(subjects[na:], b.train_set.meta["subject"].numpy() + 1000)
    np.testing.assert_array_equal(multi.train_set.meta["window"].numpy()[na:], b.train_set.meta["window"].numpy())
    assert (multi.train_set.meta["label"] == -1).all()
    assert multi.num_channels == 32 and multi.corpus_name.count("+") == 1
    assert next(iter(multi.train_dataloader()))["x"].shape == (16, 32, 5)
    # usable as a cross-corpus source: pre-training batches come from both sources, the target is DEAP
    pair = CrossCorpusDataModule(
        MultiSourceDataModule([a, b], batch_size=16), DeapDataModule(root=str(deap_root), cache_dir=str(tmp_path))
    )
    pair.prepare_data()
    pair.setup("fit")
    assert pair.num_channels == 32 and pair.target.corpus_name == "DEAP"
    np.testing.assert_array_equal(pair.source.train_set.x.numpy(), expected_x)
    batch = next(iter(pair.train_dataloader()))
    assert batch["x"].shape[1:] == (32, 5) and (batch["label"] == -1).all()
    with pytest.raises(ValueError, match=r"data.sources\[1\].*same `channels`"):
        MultiSourceDataModule([a, SeedIVDataModule(root=str(seed_iv_root), cache_dir=str(tmp_path))])
    with pytest.raises(ValueError, match="subject_stride"):
        MultiSourceDataModule(
            [seed(SeedDataModule, seed_root), seed(SeedIVDataModule, seed_iv_root)], subject_stride=2
        ).setup()
