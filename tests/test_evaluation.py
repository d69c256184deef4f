"""The evaluation protocol end to end on a DEAP-layout corpus, and across processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from scmm_lightning.callbacks import CrossCorpusTransfer
from scmm_lightning.corpora import SplitConfig
from scmm_lightning.datamodules import CrossCorpusDataModule, DeapDataModule
from scmm_lightning.evaluation import FinetuneConfig

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def separable_deap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import importlib.util

    spec = importlib.util.spec_from_file_location("deap_generate", HERE / "data" / "deap" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_deap(tmp_path_factory.mktemp("DEAP_separable"), subjects=(1, 2, 3), seed=4, valence_alpha=6.0)


def test_every_row_reaches_the_raw_features_ceiling_on_a_separable_binary_corpus(
    separable_deap: Path, tmp_path: Path
) -> None:
    """Binary DEAP-layout corpus whose alpha DE separates the classes: after a short pre-training,
    every row (pre-trained, random init, raw features) averages >= 0.9 test accuracy. With the old
    2-last-trials validation (often one class) the chosen epoch could be far from the best."""
    from scmm_lightning.tasks import SCMMPretraining

    L.seed_everything(0, verbose=False)
    common = dict(root=str(separable_deap), cache_dir=str(tmp_path), normalization="zscore")
    source = DeapDataModule(split=SplitConfig(kind="none"), batch_size=128, **common)
    target = DeapDataModule(split=SplitConfig(kind="trial", train_trials=24), **common)
    transfer = CrossCorpusTransfer(FinetuneConfig(epochs=12, batch_size=128, lr=2e-3), out_dir=str(tmp_path / "out"))
    trainer = L.Trainer(
        max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[transfer], limit_train_batches=10,
    )  # fmt: skip
    trainer.fit(
        SCMMPretraining(num_channels=32, temperature=0.05, sharpness=0.2), CrossCorpusDataModule(source, target)
    )
    means = {}
    for method in ("pretrained", "random_init", "raw_features"):
        accs = [r["accuracy"] for r in transfer.rows if r["method"] == method]
        assert len(accs) == 3
        means[method] = sum(accs) / 3
        # validation held both classes for every subject (balanced accuracy is defined on both)
        assert all(r["n_val"] == 2 * 60 for r in transfer.rows if r["method"] == method)
    assert min(means.values()) >= 0.9, means


@pytest.mark.ddp
def test_two_processes_give_the_one_process_results(tmp_path: Path) -> None:
    """The protocol's jobs spread over 2 gloo processes and gathered: the same metrics, subject by
    subject and method by method, as one process."""
    out = subprocess.run(
        [sys.executable, str(HERE / "ddp_evaluation_worker.py"), str(tmp_path / "res")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    one = torch.load(tmp_path / "res.single", weights_only=False)
    for rank in (0, 1):
        two = torch.load(tmp_path / f"res.rank{rank}", weights_only=False)
        assert two.keys() == one.keys()
        for kind in one:
            for method in one[kind]:
                assert two[kind][method].keys() == one[kind][method].keys()
                for subject, metrics in one[kind][method].items():
                    for key in (
                        "accuracy",
                        "balanced_accuracy",
                        "macro_f1",
                        "best_epoch",
                        "l2",
                        "val_balanced_accuracy",
                    ):
                        assert two[kind][method][subject].get(key) == metrics.get(key), (kind, method, subject, key)


def test_diagnostics_against_analytic_values() -> None:
    from scmm_lightning.evaluation.diagnostics import alignment, effective_rank, mean_off_diagonal_cosine, uniformity

    eye = torch.eye(6)  # centred rows of the identity: 5 equal singular values
    assert effective_rank(eye) == pytest.approx(5.0, rel=1e-9)
    line = torch.arange(8.0)[:, None] * torch.tensor([[1.0, 2.0, 3.0]])
    assert effective_rank(line) == pytest.approx(1.0, abs=1e-6)
    z = torch.randn(10, 4)
    assert alignment(z, 3 * z) == pytest.approx(0.0, abs=1e-12)
    assert alignment(z, -z) == pytest.approx(4.0)  # opposite unit vectors: |2 u|^2
    assert uniformity(torch.ones(5, 3)) == pytest.approx(0.0, abs=1e-6)  # collapse (cdist rounding)
    pair = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])  # one pair at distance 2: log exp(-2 * 4)
    assert uniformity(pair) == pytest.approx(-8.0)
    assert mean_off_diagonal_cosine(torch.ones(4, 3)) == pytest.approx(1.0)
    assert mean_off_diagonal_cosine(pair) == pytest.approx(-1.0)
