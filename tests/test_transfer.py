"""Cross-corpus evaluation: leak-free splits, selection on validation only, results, determinism,
and the benefit of pre-training over a random-init control."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from cli_helpers import run_fit

from scmm_lightning.callbacks import LinearProbe
from scmm_lightning.corpora import DEAP_32, SplitConfig
from scmm_lightning.datamodules import CrossCorpusDataModule, SyntheticEEGDataModule
from scmm_lightning.evaluation import (
    FinetuneConfig,
    classification_metrics,
    finetune,
    split_finetune_validation,
)
from scmm_lightning.evaluation.results import console_table
from scmm_lightning.model import CNNEncoder
from scmm_lightning.tasks import SCMMPretraining

ROOT = Path(__file__).resolve().parents[1]


def _number(text: str) -> object:
    try:
        return float(text) if "." in text or "nan" in text else int(text)
    except ValueError:
        return text


def trial_keys(meta, mask=None) -> set:
    sel = torch.ones_like(meta["trial"], dtype=torch.bool) if mask is None else mask
    return set(zip(meta["subject"][sel].tolist(), meta["session"][sel].tolist(), meta["trial"][sel].tolist()))


def test_finetune_validation_and_test_trials_are_disjoint() -> None:
    tgt = SyntheticEEGDataModule(
        num_channels=32,
        num_classes=2,
        num_subjects=3,
        trials_per_session=10,
        windows_per_trial=5,
        split=SplitConfig(kind="trial", train_trials=6),
    )
    tgt.setup()
    for subject in (1, 2, 3):
        tr = tgt.train_set.meta["subject"] == subject
        meta = {k: v[tr] for k, v in tgt.train_set.meta.items()}
        fit, val = split_finetune_validation(meta, 1)
        test = trial_keys({k: v[tgt.test_set.meta["subject"] == subject] for k, v in tgt.test_set.meta.items()})
        fit_t, val_t = trial_keys(meta, fit), trial_keys(meta, val)
        assert not (fit_t & val_t) and not (fit_t & test) and not (val_t & test)
        assert {t for *_, t in test} == {7, 8, 9, 10}
        # validation: for each class, its latest fine-tuning trial (a hand computation)
        label_of = {int(t): int(c) for t, c in zip(meta["trial"], meta["label"])}
        expected = {max(t for t, c in label_of.items() if c == k) for k in set(label_of.values())}
        assert {t for *_, t in val_t} == expected and set(meta["label"][val].tolist()) == {0, 1}
    with pytest.raises(ValueError, match=r"subject 7 session 1: classes \[0, 1\].*val_trials_per_class=3"):
        split_finetune_validation(meta, 3, subject=7)


def test_epoch_selection_never_looks_at_test_data() -> None:
    """Same fine-tuning and validation data, two different test sets: identical choice of epoch."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(120, 8, 5, generator=g)
    y = (x[:, 0, 0] > 0).long()
    enc = CNNEncoder(8, 5, widths=(8, 8))
    cfg = FinetuneConfig(epochs=6, batch_size=16, lr=3e-3, recipe="reference")
    test_x = torch.randn(40, 8, 5, generator=g)
    test_y = (test_x[:, 0, 0] > 0).long()
    a = finetune(enc, 2, (x[:80], y[:80]), (x[80:], y[80:]), (test_x, test_y), cfg, seed=3)
    b = finetune(enc, 2, (x[:80], y[:80]), (x[80:], y[80:]), (test_x, 1 - test_y), cfg, seed=3)  # labels permuted
    assert a["history"]["val_bacc"] == b["history"]["val_bacc"] and a["best_epoch"] == b["best_epoch"]
    assert a["accuracy"] == pytest.approx(1 - b["accuracy"])  # the test set changed, the choice did not
    hist = a["history"]
    keys = [(v, -loss) for v, loss in zip(hist["val_bacc"], hist["val_loss"])]
    assert a["best_epoch"] == max(range(len(keys)), key=lambda i: (keys[i], -i))  # ties: the earlier epoch
    assert a["optimistic_best_test_acc"] == max(hist["test_acc"])
    # the learning rate anneals (cosine, stepped once per epoch)
    assert hist["lr"][0] == pytest.approx(3e-3) and all(u > v for u, v in zip(hist["lr"], hist["lr"][1:]))


def test_reported_metrics_are_those_of_the_selected_epoch_and_no_gradient_accumulates() -> None:
    """Run the fine-tuning by hand (same seed, same batches) and compare: the reported test accuracy
    is that of the epoch with the best validation balanced accuracy, not the last epoch's, and each
    step uses only its own batch's gradient."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(96, 8, 5, generator=g)
    y = (x[:, 0, 0] + 0.8 * torch.randn(96, generator=g) > 0).long()
    enc = CNNEncoder(8, 5, widths=(8, 8))
    cfg = FinetuneConfig(epochs=8, batch_size=16, lr=1e-2, recipe="reference")
    out = finetune(enc, 2, (x[:48], y[:48]), (x[48:72], y[48:72]), (x[72:], y[72:]), cfg, seed=5)
    import copy

    from scmm_lightning.model import ClassifierHead

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        model = torch.nn.Sequential(copy.deepcopy(enc), ClassifierHead(enc.out_features, 2, cfg.hidden))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    gen = torch.Generator().manual_seed(5)
    test_acc, val_key = [], []
    for _ in range(cfg.epochs):
        model.train()
        order = torch.randperm(48, generator=gen)
        for i in range(0, 48, 16):
            idx = order[i : i + 16]
            for p in model.parameters():
                p.grad = None  # a fresh gradient every step
            torch.nn.functional.cross_entropy(model(x[:48][idx]), y[:48][idx]).backward()
            opt.step()
        sched.step()
        model.eval()
        with torch.no_grad():
            vp, tp = model(x[48:72]).argmax(1), model(x[72:]).argmax(1)
            vl = torch.nn.functional.cross_entropy(model(x[48:72]), y[48:72]).item()
        recall = [(vp[y[48:72] == c] == c).float().mean().item() for c in (0, 1)]
        val_key.append((sum(recall) / 2, -vl))
        test_acc.append((tp == y[72:]).float().mean().item())
    best = max(range(cfg.epochs), key=lambda i: (val_key[i], -i))
    assert out["best_epoch"] == best
    assert out["accuracy"] == pytest.approx(test_acc[best], abs=1e-6)
    assert out["history"]["test_acc"] == pytest.approx(test_acc, abs=1e-6)


def test_paired_statistics_against_hand_computation() -> None:
    from scipy import stats

    from scmm_lightning.evaluation import compare_methods, paired_comparison

    a = np.array([0.9, 0.8, 0.75, 0.95, 0.6, 0.85])
    b = np.array([0.7, 0.82, 0.6, 0.8, 0.55, 0.7])
    d = a - b
    res = paired_comparison(a, b)
    assert res["n"] == 6 and res["mean_difference"] == pytest.approx(d.mean())
    # exact Wilcoxon for n = 6, no ties: ranks of |d| = 0.02,0.05,0.15,0.15?.. computed by enumeration
    signs = np.array(np.meshgrid(*[[-1, 1]] * 6)).reshape(6, -1).T
    ranks = stats.rankdata(np.abs(d))
    w_obs = min(ranks[d > 0].sum(), ranks[d < 0].sum())
    w_all = np.minimum((signs > 0) @ ranks, (signs < 0) @ ranks)
    assert res["p_value"] == pytest.approx(float(np.mean(w_all <= w_obs)))
    rng = np.random.default_rng(0)  # the stated bootstrap: 10,000 resamples, seed 0, percentiles
    means = d[rng.integers(0, 6, size=(10_000, 6))].mean(axis=1)
    assert (res["ci_low"], res["ci_high"]) == pytest.approx(tuple(np.percentile(means, [2.5, 97.5])))
    rows = [{"method": m, "subject": s, "accuracy": v} for m, vals in (("p", a), ("r", b)) for s, v in enumerate(vals)]
    (cmp,) = compare_methods(rows, [("p", "r")], ("accuracy",))
    assert cmp["a"] == "p" and cmp["b"] == "r" and cmp["mean_difference"] == pytest.approx(d.mean())


def test_paired_spread_comparison_against_the_pitman_morgan_formula() -> None:
    from scipy import stats

    from scmm_lightning.evaluation import paired_spread_comparison

    a = np.array([0.61, 0.58, 0.65, 0.60, 0.63, 0.55])
    b = np.array([0.615, 0.60, 0.62, 0.605, 0.625, 0.60])
    res = paired_spread_comparison(a, b)
    # Pitman (1939) / Morgan (1939), the textbook form in the variance ratio F and the correlation r:
    # t = (F - 1) sqrt(n - 2) / (2 sqrt(F (1 - r^2))), n - 2 degrees of freedom
    n, f = 6, a.var(ddof=1) / b.var(ddof=1)
    r = np.corrcoef(a, b)[0, 1]
    t = (f - 1) * np.sqrt(n - 2) / (2 * np.sqrt(f * (1 - r * r)))
    assert res["n"] == 6 and res["std_ratio"] == pytest.approx(np.sqrt(f))
    assert res["p_value"] == pytest.approx(2 * stats.t.sf(abs(t), n - 2))
    assert res["p_value"] < 0.05  # a's spread (0.035) is over 3x b's (0.010) on these seeds
    assert paired_spread_comparison(b + 0.01, b)["p_value"] == 1.0  # a shift: the same spread
    assert np.isnan(paired_spread_comparison(a[:2], b[:2])["p_value"])  # too few pairs
    with_nan = paired_spread_comparison(np.append(a, np.nan), np.append(b, 0.5))
    assert with_nan["p_value"] == pytest.approx(res["p_value"]) and with_nan["n"] == 6


def test_auroc_binary_and_multiclass_against_hand_computation() -> None:
    logits = torch.tensor([[0.0, 2.0], [0.0, -1.0], [0.0, 0.5], [0.0, -0.2]])
    target = torch.tensor([1, 0, 0, 1])
    m = classification_metrics(logits, target, 2)
    # P(class 1) ranks: positives {2.0, -0.2}, negatives {-1.0, 0.5}: pairs won 3 of 4
    assert m["auroc"] == pytest.approx(0.75) and m["accuracy"] == pytest.approx(0.5)
    assert m["balanced_accuracy"] == pytest.approx((1 / 2 + 1 / 2) / 2)  # recall 1/2 in each class
    logits3 = torch.tensor([[3.0, 0, 0], [0, 3.0, 0], [0, 0, 3.0], [0, 3.0, 0]])
    m3 = classification_metrics(logits3, torch.tensor([0, 1, 2, 2]), 3)
    assert m3["accuracy"] == pytest.approx(0.75)
    # macro F1: class0 1, class1 2/3 (p 0.5, r 1), class2 2/3 (p 1, r 0.5)
    assert m3["macro_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    assert m3["confusion"].tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    assert m3["balanced_accuracy"] == pytest.approx((1 + 1 + 1 / 2) / 3)


def run_pair(tmp_path: Path, *extra: str) -> Path:
    run_fit(ROOT / "tests/configs/tiny_pair.yaml", tmp_path, *extra)
    (csv_path,) = list(tmp_path.rglob("transfer_results.csv"))
    return csv_path


def test_results_have_one_row_per_subject_and_repeat_exactly(tmp_path: Path) -> None:
    a = run_pair(tmp_path / "a")
    b = run_pair(tmp_path / "b")
    rows = list(csv.DictReader(a.open()))
    assert sorted((r["method"], int(r["subject"])) for r in rows) == [
        (m, s) for m in ("pretrained", "random_init", "raw_features") for s in (1, 2, 3)
    ]
    assert a.read_bytes() == b.read_bytes()  # same seed, same config, CPU: identical table
    for suffix in (".md", ".png", "_summary.json"):
        assert (a.parent / f"transfer_results{suffix}").stat().st_size > 0
    md = (a.parent / "transfer_results.md").read_text()
    assert "optimistic" in md.lower()
    # the summary table: as many header cells as value cells; means recomputed from the CSV
    summary_lines = md.split("## Mean")[1].split("## Paired")[0].splitlines()
    table = [line for line in summary_lines if line.startswith("|")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    for line in table[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert len(cells) == len(header)
        column = cells[header.index("balanced acc.")]
        values = [float(r["balanced_accuracy"]) for r in rows if r["method"] == cells[0]]
        assert float(column.split(" +/- ")[0]) == pytest.approx(sum(values) / len(values), abs=1e-4)
    console = console_table([{k: _number(v) for k, v in r.items()} for r in rows], "t").splitlines()
    head = next(line for line in console if line.startswith("method"))
    value_line = next(line for line in console if line.startswith("pretrained") and "+/-" in line)
    assert head.split()[1:] == [
        "accuracy", "balanced", "acc.", "macro-F1", "AUROC", "probe", "balanced", "acc.", "optimistic*"
    ]  # fmt: skip
    summary = json.loads((a.parent / "transfer_results_summary.json").read_text())
    methods = ("pretrained", "random_init", "raw_features")
    assert {(c["a"], c["b"], c["metric"]) for c in summary["comparisons"]} == {
        (x, y, m)
        for x, y in (
            ("pretrained", "random_init"),
            ("pretrained", "raw_features"),
            *((m, f"{m} probe") for m in methods),
        )
        for m in ("accuracy", "balanced_accuracy")
    }
    for c in summary["comparisons"]:  # the paired difference recomputed from the CSV rows
        va = {r["subject"]: float(r[c["metric"]]) for r in rows if r["method"] == c["a"]}
        if c["b"].endswith(" probe"):  # fine-tune - probe of the same row: the probe's column
            vb = {r["subject"]: float(r[f"probe_{c['metric']}"]) for r in rows if r["method"] == c["a"]}
        else:
            vb = {r["subject"]: float(r[c["metric"]]) for r in rows if r["method"] == c["b"]}
        assert c["n"] == 3 and c["mean_difference"] == pytest.approx(sum(va[k] - vb[k] for k in va) / 3, abs=1e-4)
    assert value_line.count("+/-") == 6  # one mean +/- std under each of the six headings


def _probe_after_pretraining(lr: float) -> float:
    """The synthetic pair of ``benchmarks/untrained_control.py`` (8 source subjects), SCMM with soft
    weights from time, 10 epochs at ``lr``, seed 0; the target probe's mean balanced accuracy (one L2)."""
    import importlib.util

    from scmm_lightning.evaluation import linear_probe

    spec = importlib.util.spec_from_file_location("untrained_control", ROOT / "benchmarks/untrained_control.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    L.seed_everything(0, verbose=False)
    data, tgt = bench.pair()
    model = SCMMPretraining(num_channels=32, lr=lr, **bench.METHODS["scmm_time"])
    trainer = L.Trainer(
        max_epochs=10, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(model, data)
    res = linear_probe(model.encoder, tgt.train_set, tgt.test_set, 2, l2=1e-3)
    return float(np.mean([r["balanced_accuracy"] for r in res.values()]))


def test_pretrained_weights_beat_the_same_encoder_untrained() -> None:
    """The default suite's check that pre-training does something: the same run with lr = 0 (same
    initial weights, same BatchNorm statistics of the source: only the learned weights differ) is
    the control. Measured (``python benchmarks/untrained_control.py``), 10 epochs, seeds 0 / 1 / 2: probe
    0.997 / 0.998 / 0.990 vs 0.928 / 0.915 / 0.929 (fails if the loss stops training the encoder). SCMM
    as published (input-space soft weights) does NOT pass this check at this budget (0.929 / 0.883 /
    0.898 vs the same controls), and
    the table's random_init control (fresh BatchNorm statistics) fine-tunes to ~0.62 where an lr = 0
    run reaches 0.92-0.96: see the README's note on the random_init row."""
    trained, untrained = _probe_after_pretraining(5e-4), _probe_after_pretraining(0.0)
    assert trained >= untrained + 0.04, (trained, untrained)


@pytest.mark.slow  # about a minute on 2 cores: in `make test-all`
def test_pretraining_beats_random_init_on_linear_probe() -> None:
    """Synthetic pair, seed 0, 15 epochs: the pre-trained encoder's probe accuracy exceeds the
    random-init control's by at least 3 points (measured: about 0.98 vs 0.90)."""
    L.seed_everything(0, verbose=False)
    src = SyntheticEEGDataModule(num_channels=62, num_classes=3, channels=list(DEAP_32), batch_size=256)
    tgt = SyntheticEEGDataModule(
        num_channels=32,
        num_classes=2,
        num_subjects=8,
        trials_per_session=10,
        windows_per_trial=40,
        seed=1,
        corpus_shift=1.5,
        class_strength=0.3,
        noise_std=0.5,
        subject_std=1.0,
        split=SplitConfig(kind="trial", train_trials=6),
    )
    probe = LinearProbe(every_n_epochs=15, l2_grid=(1e-3,))  # one L2: the claim is about the encoders
    trainer = L.Trainer(
        max_epochs=15,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[probe],
    )
    trainer.fit(SCMMPretraining(num_channels=32), CrossCorpusDataModule(src, tgt))
    final = probe.history[-1]
    assert final["probe/acc_mean"] >= final["probe/random_init_acc_mean"] + 0.03, final


def test_montage_mismatch_is_a_clear_error() -> None:
    pair = CrossCorpusDataModule(SyntheticEEGDataModule(num_channels=62), SyntheticEEGDataModule(num_channels=32))
    with pytest.raises(ValueError, match="montages differ.*data.init_args.target.init_args.channels"):
        pair.setup("fit")


def test_class_names_follow_the_label_map() -> None:
    dm = SyntheticEEGDataModule(num_classes=4, trials_per_session=8, label_map={0: 1, 1: 0, 3: 2})
    assert dm.num_classes == 3 and dm.class_names == ("class1", "class0", "class3")
