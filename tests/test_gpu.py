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


@pytest.fixture
def solver_devices(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The device type of every ``solve_logistic`` call the probe makes while the test runs."""
    from scmm_lightning.evaluation import logistic

    seen: list[str] = []
    solve = logistic.solve_logistic

    def recorded(x, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        seen.append(x.device.type)
        return solve(x, *args, **kwargs)

    monkeypatch.setattr("scmm_lightning.evaluation.probe.solve_logistic", recorded)
    return seen


@pytest.mark.parametrize("batched", [False, True])
def test_the_probe_solves_on_the_gpu_as_on_the_cpu(batched: bool, solver_devices: list[str]) -> None:
    """``select_and_fit_probes(device="cuda")`` runs every solve on the GPU (recorded from inside
    the solver) and returns CPU probes that choose the same L2 with the same validation scores as
    the CPU's solve, their weights within the solver's tolerance of the CPU's (a gradient max-norm
    of 1e-4 on a problem whose curvature is at least 2 l2 = 2e-3 bounds a weight's distance from
    the optimum by ~0.05; cuBLAS and MKL sum the products in different orders) and their
    predictions the same on all but a borderline window or two."""
    from test_batched_evaluation import probe_tasks

    from scmm_lightning.evaluation.probe import select_and_fit_probes

    tasks, grid = probe_tasks(), (1e-3, 1e-2, 1e-1, 1.0)
    cpu = select_and_fit_probes(tasks, 3, grid, batched=batched)
    assert set(solver_devices) == {"cpu"}
    solver_devices.clear()
    gpu = select_and_fit_probes(tasks, 3, grid, batched=batched, device="cuda")
    assert solver_devices and set(solver_devices) == {"cuda"}
    for (x, _, _), a, b in zip(tasks, cpu, gpu):
        assert (a.l2, a.at_edge) == (b.l2, b.at_edge)
        assert abs(a.val_balanced_accuracy - b.val_balanced_accuracy) < 1e-6
        for pa, pb in zip([a.probe, *a.fold_probes], [b.probe, *b.fold_probes]):
            assert pb.weight.device.type == "cpu"
            torch.testing.assert_close(pa.mean, pb.mean, rtol=1e-9, atol=1e-9)
            torch.testing.assert_close(pa.weight, pb.weight, rtol=0, atol=0.05)
            assert int((pa(x).argmax(1) != pb(x).argmax(1)).sum()) <= 2


def test_the_probe_engines_give_the_same_probes_on_the_gpu() -> None:
    """On the GPU the per-problem loop and the batched solve give the same probes to ~1e-9 (the
    solver works in float64 there, ``logistic.working_dtype``: cuBLAS splits a product's sums by
    the block's shapes, and in float32 a tolerance-level difference of the solutions moved a
    benchmark subject's L2), so the same validation scores and the same L2 everywhere, a
    class-balanced probe too."""
    from test_batched_evaluation import probe_tasks

    from scmm_lightning.evaluation.probe import select_and_fit_probes

    tasks, grid = probe_tasks(), (1e-3, 1e-2, 1e-1, 1.0)
    for balanced in (False, True):
        loop = select_and_fit_probes(tasks, 3, grid, balanced, batched=False, device="cuda")
        batched = select_and_fit_probes(tasks, 3, grid, balanced, batched=True, device="cuda")
        for a, b in zip(loop, batched):
            assert (a.l2, a.val_balanced_accuracy, a.at_edge) == (b.l2, b.val_balanced_accuracy, b.at_edge)
            for pa, pb in zip([a.probe, *a.fold_probes], [b.probe, *b.fold_probes]):
                for name in ("mean", "std", "weight", "bias"):
                    torch.testing.assert_close(getattr(pa, name), getattr(pb, name), rtol=0, atol=1e-9)


def test_the_probe_engines_agree_on_the_gpu(solver_devices: list[str]) -> None:
    """``run_protocol`` with CUDA encoders solves its probes on the GPU (the encoder's device), and
    there the per-problem loop and the batched solve choose the same L2 for every subject and
    method, with metrics within one borderline test window per subject."""
    from test_batched_evaluation import encoders, target

    from scmm_lightning.evaluation import FinetuneConfig, run_protocol

    train, test = target({1: 9, 2: 5, 3: 13, 4: 7})
    gpu = {k: v.cuda() for k, v in encoders().items()}
    results = {
        engine: run_protocol(gpu, train, test, 3, FinetuneConfig(engine=engine, selection="holdout"), 7, ("probe",))
        for engine in ("loop", "batched")
    }
    assert solver_devices and set(solver_devices) == {"cuda"}
    for name, per_subject in results["loop"]["probe"].items():
        for subject, a in per_subject.items():
            b = results["batched"]["probe"][name][subject]
            assert a["l2"] == b["l2"], (name, subject)
            assert abs(a["accuracy"] - b["accuracy"]) * a["n_test"] <= 1 + 1e-6, (name, subject)


def test_the_evaluation_convolves_and_multiplies_in_ieee_float32_on_cuda() -> None:
    """cuDNN's default TF32 convolutions, and TF32 products asked for by the run (Lightning's advice,
    ``set_float32_matmul_precision("high")``), do not reach the evaluation (``protocol.ieee_float32``):
    inside ``run_protocol`` a float32 convolution and product on the GPU are within float32's
    rounding of float64's (relative error < 1e-5); outside it, under the run's settings, TF32's
    (> 1e-4, on a GPU with TF32: compute capability 8 or above), so the test can fail."""
    import torch.nn.functional as F
    from test_batched_evaluation import target
    from test_evaluation_precision import Recorder

    from scmm_lightning.evaluation import FinetuneConfig, run_protocol

    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(64, 32, 100, generator=g).cuda(), torch.randn(48, 32, 5, generator=g).cuda()
    a, b = torch.randn(256, 512, generator=g).cuda(), torch.randn(512, 256, generator=g).cuda()

    def errors() -> tuple[float, float]:
        conv, conv64 = F.conv1d(x, w, padding=2), F.conv1d(x.double(), w.double(), padding=2)
        prod, prod64 = a @ b, a.double() @ b.double()
        return (
            ((conv - conv64).abs().max() / conv64.abs().max()).item(),
            ((prod - prod64).abs().max() / prod64.abs().max()).item(),
        )

    train, test = target({1: 9, 2: 5})
    encoder = Recorder(errors)
    torch.set_float32_matmul_precision("high")
    try:
        run_protocol({"recorder": encoder}, train, test, 3, FinetuneConfig(selection="holdout"), 7, ("probe",))
        outside = errors()
    finally:
        torch.set_float32_matmul_precision("highest")
    assert encoder.seen and all(conv < 1e-5 and prod < 1e-5 for conv, prod in encoder.seen), encoder.seen
    if torch.cuda.get_device_capability()[0] >= 8:
        assert outside[0] > 1e-4 and outside[1] > 1e-4, outside
