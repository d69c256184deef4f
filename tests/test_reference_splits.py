"""Every shipped reference config's target split, on fixture corpora written with the official
label orders (SEED's label.mat, SEED-IV's three fixed session tables; DEAP's per-subject ratings):
every subject's fine-tuning part (after validation), its validation part and its test part hold
every class it is scored on; so does every cross-validation fold's fitting and validation part that
chooses the probe's L2 and the fine-tuning checkpoint. A split rule that keeps "the first n trials"
fails here on SEED-IV."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
import yaml

from scmm_lightning.corpora import SplitConfig, per_class_trial_split
from scmm_lightning.evaluation import FinetuneConfig, protocol_parts

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = [
    "seed_to_seed_iv.yaml", "seed_iv_to_seed.yaml", "deap_to_seed.yaml", "seed_to_deap_valence.yaml",
    "seed_to_deap_arousal.yaml", "seed_and_seed_iv_to_deap_valence.yaml",
]  # fmt: skip


def target_of(config: Path, tmp_path: Path):  # noqa: ANN201
    spec = yaml.safe_load(config.read_text())
    target = spec["data"]["init_args"]["target"]
    module, _, name = target["class_path"].rpartition(".")
    args = dict(target["init_args"])
    args["split"] = SplitConfig(**args["split"])
    finetune = next(
        c["init_args"]["finetune"]
        for c in spec["trainer"]["callbacks"]
        if c["class_path"].endswith("CrossCorpusTransfer")
    )
    dm = getattr(importlib.import_module(module), name)(**args, cache_dir=str(tmp_path))
    dm.prepare_data()
    dm.setup("fit")
    keys = ("val_trials_per_class", "selection", "folds", "recipe", "ema_decay")
    return dm, FinetuneConfig(**{k: finetune[k] for k in keys if k in finetune})


@pytest.mark.parametrize("name", REFERENCE)
def test_every_subject_fine_tunes_validates_and_tests_every_class(name: str, corpora_env: Path, tmp_path: Path) -> None:
    dm, config = target_of(ROOT / "experiments" / name, tmp_path)
    classes = set(range(dm.num_classes))
    train, test = dm.train_set, dm.test_set
    parts = protocol_parts(train, test, config)
    assert parts
    assert config.selection == "fixed" and config.recipe == "lpft", name  # what every shipped config runs
    assert config.ema_decay == "auto", name  # the moving average over the last half of the budget
    for part in parts:
        y = train.meta["label"]
        assert len(part.folds) >= 2, (name, part.key)
        assert set(y[part.fit].tolist()) == classes, (name, part.key, "refit")
        for f, (fit, val) in enumerate(part.folds):
            for side, rows in (("fine-tune", fit), ("validation", val)):
                assert set(y[rows].tolist()) == classes, (name, part.key, f, side, set(y[rows].tolist()))
            # a fold never splits a trial
            fit_trials = set(zip(train.meta["session"][fit].tolist(), train.meta["trial"][fit].tolist()))
            val_trials = set(zip(train.meta["session"][val].tolist(), train.meta["trial"][val].tolist()))
            assert not fit_trials & val_trials
        assert set(test.meta["label"][part.test].tolist()) == classes, (name, part.key, "test")
        # no trial on both sides
        tr = {(s, e, t) for s, e, t in zip(*(train.meta[k][train.meta["subject"] == part.key].tolist()
                                             for k in ("subject", "session", "trial")))}  # fmt: skip
        te = {
            (s, e, t) for s, e, t in zip(*(test.meta[k][part.test].tolist() for k in ("subject", "session", "trial")))
        }
        assert not tr & te


def test_seed_iv_first_twelve_trials_miss_a_class_the_per_class_rule_does_not(
    corpora_env: Path, tmp_path: Path
) -> None:
    """The defect this rule mends, on the official SEED-IV session-1 table with fear dropped: the
    first 12 of its 18 trials leave the last 6 without a sad trial."""
    dm, _ = target_of(ROOT / "experiments" / "seed_to_seed_iv.yaml", tmp_path)
    meta = {k: np.concatenate([dm.train_set.meta[k].numpy(), dm.test_set.meta[k].numpy()]) for k in dm.train_set.meta}
    from scmm_lightning.corpora import trial_split

    _, old_test = trial_split(meta, 12)
    assert set(meta["label"][old_test].tolist()) != {0, 1, 2}
    _, new_test = per_class_trial_split(meta, 2)
    assert set(meta["label"][new_test].tolist()) == {0, 1, 2}


def test_per_class_rule_by_hand() -> None:
    """One subject-session, classes with 6, 3 and 2 trials, k = 2: the latest 2 of class 0, the
    latest 1 of class 1 (it keeps 2), none of class 2."""
    trials = np.arange(1, 12)
    labels = np.array([0, 1, 0, 2, 0, 1, 0, 2, 0, 1, 0])
    meta = {"subject": np.ones(11, int), "session": np.ones(11, int), "trial": trials, "label": labels}
    _, test = per_class_trial_split(meta, 2)
    assert trials[test].tolist() == [9, 10, 11]
