"""CUDA checks (marker `gpu`; skipped without a CUDA device, excluded from the default suite)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from scmm_lightning.cli import main
from scmm_lightning.tasks import SCMMPretraining

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_mixed_precision_loss_is_finite_and_close_to_float32(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    module = SCMMPretraining(num_channels=62).cuda()
    x = torch.rand(256, 62, 5, device="cuda")
    full = module.compute_losses(x, torch.Generator("cuda").manual_seed(0))
    with torch.autocast("cuda", dtype=dtype):
        half = module.compute_losses(x, torch.Generator("cuda").manual_seed(0))
    for k in ("loss", "contrastive", "reconstruction"):
        assert torch.isfinite(half[k]) and half[k].item() == pytest.approx(full[k].item(), rel=0.03), k


@pytest.mark.parametrize("precision", ["16-mixed", "bf16-mixed"])
def test_fit_on_cuda(tiny_config: Path, tmp_path: Path, precision: str) -> None:
    main(
        [
            "fit",
            "--config",
            str(tiny_config),
            "--trainer.accelerator",
            "gpu",
            "--trainer.precision",
            precision,
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
        ]
    )
    assert list(tmp_path.rglob("last.ckpt"))


@pytest.mark.parametrize("recipe", ["reference", "lpft"])
def test_batched_engine_equals_the_loop_on_cuda(recipe: str) -> None:
    """The batched fine-tuning engine on the GPU, either recipe: the same selected checkpoints as the
    per-model loop there, metrics within one borderline test window per subject."""
    from test_batched_evaluation import encoders, target

    from scmm_lightning.evaluation import FinetuneConfig, run_protocol

    train, test = target({1: 9, 2: 5, 3: 13, 4: 7})
    gpu = {k: v.cuda() for k, v in encoders().items()}
    budget = (
        dict(epochs=6, recipe="reference") if recipe == "reference" else dict(recipe="lpft", steps=30, eval_every=5)
    )
    results = {
        engine: run_protocol(
            gpu,
            train,
            test,
            3,
            FinetuneConfig(batch_size=16, lr=3e-3, engine=engine, selection="holdout", **budget),
            7,
        )  # fmt: skip
        for engine in ("loop", "batched")
    }
    key = "best_epoch" if recipe == "reference" else "best_step"
    for name, per_subject in results["loop"]["finetune"].items():
        for subject, a in per_subject.items():
            b = results["batched"]["finetune"][name][subject]
            assert a[key] == b[key], (name, subject)
            assert abs(a["accuracy"] - b["accuracy"]) * a["n_test"] <= 1 + 1e-6, (name, subject)


@pytest.mark.parametrize("engine", ["loop", "batched"])
def test_the_protocol_leaves_the_cuda_generator_as_it_was(engine: str) -> None:
    """Fine-tuning seeds its heads under ``seeding.seeded``, which forks every CUDA generator with
    the CPU one: a probe or transfer callback inside a GPU pre-training run must not re-seed the run's
    CUDA stream (``fork_rng(devices=[])`` around ``torch.manual_seed`` did, in the loop engine)."""
    from test_batched_evaluation import encoders, target

    from scmm_lightning.evaluation import FinetuneConfig, run_protocol
    from scmm_lightning.seeding import seeded

    train, test = target({1: 9, 2: 5})
    gpu = {k: v.cuda() for k, v in encoders().items()}
    torch.cuda.manual_seed(123)
    before = torch.cuda.get_rng_state()
    config = FinetuneConfig(batch_size=16, epochs=2, recipe="reference", engine=engine, selection="holdout")
    run_protocol(gpu, train, test, 3, config, 7)
    assert torch.equal(torch.cuda.get_rng_state(), before)
    with seeded(5):  # inside, the CUDA generator is seeded too
        inside = torch.rand(4, device="cuda")
    torch.cuda.manual_seed(5)
    assert torch.equal(inside, torch.rand(4, device="cuda"))
