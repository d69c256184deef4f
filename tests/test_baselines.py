"""Baselines and ablation switches: equal to loop implementations, and really different computations."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from reference_loops import nt_xent_loop

from scmm_lightning.cli import main
from scmm_lightning.cli.ablations import main as ablations_main
from scmm_lightning.losses import HardContrastiveLoss, SoftContrastiveLoss
from scmm_lightning.model import Masking, similarity_matrix
from scmm_lightning.tasks import SCMMPretraining

ROOT = Path(__file__).resolve().parents[1]
METHODS = sorted((ROOT / "experiments" / "methods").glob("*.yaml"))


def views(b: int, mask_num: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 6, 5, generator=g)
    masked, _ = Masking("hybrid", 0.5, 0.3, mask_num)(x, g)
    return torch.cat([x, masked]), torch.arange(b).repeat(mask_num + 1), torch.randn(b * (mask_num + 1), 8, generator=g)


@pytest.mark.parametrize("b,mask_num", [(2, 1), (4, 1), (3, 2), (5, 2)])
@pytest.mark.parametrize("normalize", [True, False])
def test_hard_contrastive_matches_loop(b: int, mask_num: int, normalize: bool) -> None:
    _, sample, z = views(b, mask_num, seed=b)
    got = HardContrastiveLoss(0.3, normalize=normalize)(z, z, sample)
    assert got.item() == pytest.approx(nt_xent_loop(z.numpy(), sample.tolist(), 0.3, normalize), rel=1e-5)


def test_soft_weighting_off_is_plain_infonce() -> None:
    inputs, sample, z = views(5, 2, seed=9)
    soft_off = SoftContrastiveLoss(0.5, 0.75, 0.2, soft=False)
    w = soft_off.weights(inputs, sample)
    positive = (sample[:, None] == sample[None, :]) & ~torch.eye(len(sample), dtype=torch.bool)
    assert torch.all(w[~positive] == 0) and torch.all(w[positive] == 1)
    hard = HardContrastiveLoss(0.5, normalize=False, average="all_pairs")(z, z, sample)
    assert soft_off(similarity_matrix(z, z), inputs, sample).item() == pytest.approx(hard.item(), rel=1e-6)
    soft_on = SoftContrastiveLoss(0.5, 0.75, 0.2)(similarity_matrix(z, z), inputs, sample)
    assert soft_on.item() > hard.item() + 1e-3  # the soft terms add weight to non-positive pairs


def test_equal_loss_weights_are_fixed_and_equal() -> None:
    torch.manual_seed(0)
    module = SCMMPretraining(num_channels=6, num_bands=5, learn_loss_weights=False)
    assert not any(n.startswith("loss_weighting") for n, _ in module.named_parameters())
    losses = module.compute_losses(torch.rand(4, 6, 5), torch.Generator().manual_seed(0))
    expected = 0.5 * (losses["contrastive"] + losses["reconstruction"]) + 2 * math.log(2)
    assert losses["loss"].item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("method", METHODS, ids=lambda p: p.stem)
def test_every_method_trains_on_the_tiny_pair(method: Path, tmp_path: Path) -> None:
    main(
        [
            "fit",
            "--config",
            str(ROOT / "tests/configs/tiny_pair.yaml"),
            "--config",
            str(method),
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
        ]
    )
    (metrics,) = list(tmp_path.rglob("metrics.csv"))
    rows = list(csv.DictReader(metrics.open()))
    (results,) = list(tmp_path.rglob("transfer_results.csv"))
    assert len(list(csv.DictReader(results.open()))) == 9  # 3 rows (pretrained + 2 controls) x 3 subjects
    if method.stem == "no_pretraining":
        assert not any(r.get("train/loss_epoch") for r in rows)
        return
    losses = [float(r["train/loss_epoch"]) for r in rows if r.get("train/loss_epoch")]
    assert len(losses) == 2 and all(np.isfinite(losses)) and losses[1] < losses[0]


def test_ablation_runner_writes_one_table(tmp_path: Path) -> None:
    assert (
        ablations_main(
            [
                "--setting",
                "tests/configs/tiny_pair.yaml",
                "--methods",
                "scmm",
                "no_pretraining",
                "--seeds",
                "0",
                "1",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    out = tmp_path / "tiny_pair"
    rows = list(csv.DictReader((out / "ablation_results.csv").open()))
    for method in ("scmm", "no_pretraining"):  # every (seed, subject) row of each method's own encoder
        sel = [r for r in rows if r["method"] == method]
        assert sorted((int(r["seed"]), int(r["subject"])) for r in sel) == [(e, s) for e in (0, 1) for s in (1, 2, 3)]
    md = (out / "ablation_results.md").read_text()
    assert (out / "ablation_results.png").stat().st_size > 0
    line = next(x for x in md.splitlines() if x.startswith("| scmm |"))
    accuracy = [float(r["accuracy"]) for r in rows if r["method"] == "scmm"]
    assert float(line.split("|")[2].split("+/-")[0]) == pytest.approx(sum(accuracy) / 6, abs=1e-4)
    seed_means = [
        sum(float(r["accuracy"]) for r in rows if r["method"] == "scmm" and r["seed"] == str(e)) / 3 for e in range(2)
    ]
    assert float(line.split("|")[2].split("+/-")[1]) == pytest.approx(float(np.std(seed_means)), abs=1e-4)  # over seeds
    assert line.rstrip("| ").endswith("6")
    (cmp,) = [
        c for c in json.loads((out / "ablation_results.json").read_text())["comparisons"] if c["metric"] == "accuracy"
    ]
    assert (cmp["a"], cmp["b"], cmp["n"]) == ("no_pretraining", "scmm", 6)  # paired over subject x seed
    diff = [
        float(x["accuracy"]) - float(y["accuracy"])
        for x in rows
        for y in rows
        if x["method"] == "no_pretraining"
        and y["method"] == "scmm"
        and (x["seed"], x["subject"]) == (y["seed"], y["subject"])
    ]
    assert cmp["mean_difference"] == pytest.approx(sum(diff) / 6, abs=1e-3)
