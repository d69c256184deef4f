"""Metrics over the classes present in the part scored, against hand computation and scikit-learn."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from scmm_lightning.evaluation import classification_metrics


def one_subject(n_trials: int, label_of, shift: float):  # noqa: ANN001, ANN201
    """One subject, one session, ``n_trials`` trials of 4 windows of 2 x 5 features, labels
    ``label_of(trial)``, features shifted by ``shift`` x label."""
    rng = np.random.default_rng(0)
    trials = np.repeat(np.arange(1, n_trials + 1), 4)
    n = len(trials)
    meta = {
        "subject": np.ones(n, int),
        "session": np.ones(n, int),
        "trial": trials,
        "window": np.tile(np.arange(4), n_trials),
    }
    meta["label"] = label_of(trials)
    x = rng.standard_normal((n, 2, 5)).astype(np.float32) + shift * meta["label"][:, None, None]
    return trials, meta, x


def logits_for(pred: list[int], k: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(pred), k).float() * 5


def test_a_model_predicting_the_absent_class_by_hand() -> None:
    """3-class corpus, class 2 absent from the test part. Truth 0 0 0 0 1 1 1 1; predictions
    0 0 0 2 1 1 2 2: accuracy 5/8; recalls 3/4 (class 0) and 2/4 (class 1) -> balanced accuracy 5/8
    (not (3/4 + 1/2 + 0) / 3 = 5/12: class 2 has no recall to average); F1 class 0: precision 1,
    recall 3/4 -> 6/7; class 1: 1, 1/2 -> 2/3; macro-F1 over the present classes (6/7 + 2/3) / 2."""
    truth = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no torchmetrics "No positive samples" noise
        m = classification_metrics(logits_for([0, 0, 0, 2, 1, 1, 2, 2], 3), truth, 3)
    assert m["accuracy"] == pytest.approx(5 / 8)
    assert m["balanced_accuracy"] == pytest.approx(5 / 8)
    assert m["macro_f1"] == pytest.approx((6 / 7 + 2 / 3) / 2)
    assert m["test_classes"] == "0;1"
    assert m["confusion"].tolist() == [[3, 0, 1], [0, 2, 2], [0, 0, 0]]


@pytest.mark.parametrize("seed", range(5))
def test_metrics_match_scikit_learn_on_parts_missing_classes(seed: int) -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    k = 4
    truth = rng.choice([0, 1, 3], size=60)  # class 2 never in the part
    logits = torch.tensor(rng.standard_normal((60, k)), dtype=torch.float32)
    pred = logits.argmax(1).numpy()
    m = classification_metrics(logits, torch.tensor(truth), k)
    present = sorted(set(truth.tolist()))
    assert m["balanced_accuracy"] == pytest.approx(metrics.balanced_accuracy_score(truth, pred), abs=1e-6)
    assert m["macro_f1"] == pytest.approx(
        metrics.f1_score(truth, pred, average="macro", labels=present, zero_division=0), abs=1e-6
    )
    assert m["accuracy"] == pytest.approx(metrics.accuracy_score(truth, pred), abs=1e-6)
    probs = torch.softmax(logits, 1).numpy()
    ovr = np.mean([metrics.roc_auc_score(truth == c, probs[:, c]) for c in present])
    assert m["auroc"] == pytest.approx(ovr, abs=1e-5)
    assert m["test_classes"] == ";".join(map(str, present))


def test_a_protocol_whose_test_part_lacks_a_class_warns_once_naming_it() -> None:
    from scmm_lightning.datamodules import WindowDataset
    from scmm_lightning.evaluation import FinetuneConfig, FlattenFeatures, run_protocol

    trials, meta, x = one_subject(9, lambda t: t % 3, shift=0.0)
    train = trials <= 6
    test = (trials > 6) & (meta["label"] != 2)  # class 2 untested
    make = lambda m: WindowDataset(x[m], {k: v[m] for k, v in meta.items()})  # noqa: E731
    with pytest.warns(UserWarning, match=r"lack target classes.*subject 1: \[2\]") as record:
        res = run_protocol({"raw": FlattenFeatures(2, 5)}, make(train), make(test), 3, FinetuneConfig(epochs=1, steps=5), 0,
                           ("probe", "finetune"))  # fmt: skip
    assert sum("lack target classes" in str(w.message) for w in record) == 1
    assert res["finetune"]["raw"][1]["test_classes"] == "0;1"


def test_train_accuracy_is_reported_and_a_model_that_learnt_nothing_is_named() -> None:
    """A probe with an overwhelming penalty (weights ~ 0) predicts the majority class of its training
    rows: train_accuracy equals the majority rate (by hand: 24 of 36 rows are class 0), and one
    warning names the rows."""
    from scmm_lightning.datamodules import WindowDataset
    from scmm_lightning.evaluation import FlattenFeatures, linear_probe

    trials, meta, x = one_subject(12, lambda t: (t % 3 == 0).astype(int), shift=1.0)  # 3, 6, 9, 12: class 1
    train = trials <= 9
    make = lambda m: WindowDataset(x[m], {k: v[m] for k, v in meta.items()})  # noqa: E731
    with pytest.warns(UserWarning, match=r"do not beat the majority class.*probe/encoder/subject 1"):
        res = linear_probe(FlattenFeatures(2, 5), make(train), make(~train), 2, l2=1e6)
    assert res[1]["train_accuracy"] == pytest.approx(24 / 36)  # the majority rate
    assert res[1]["train_balanced_accuracy"] == pytest.approx(0.5) == res[1]["train_chance"]
    sensible = linear_probe(FlattenFeatures(2, 5), make(train), make(~train), 2, l2=1e-2)
    assert sensible[1]["train_accuracy"] > 24 / 36
