"""Global negatives under DDP: 2 gloo processes on the CPU against one process on the global batch."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ddp_inputs import global_inputs

from scmm_lightning.losses import SoftContrastiveLoss
from scmm_lightning.model import SimilarityAggregator, masked_logits, similarity_matrix
from scmm_lightning.tasks import SCMMPretraining

HERE = Path(__file__).resolve().parent
TOL = dict(rtol=1e-5, atol=1e-5)  # float32; the bar is 1e-5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_worker(out: Path, **kwargs: object) -> subprocess.CompletedProcess:
    """``tests/ddp_worker.py`` in 2 gloo processes, writing ``OUT.rank0`` and ``OUT.rank1``."""
    command = [sys.executable, str(HERE / "ddp_worker.py"), str(out), "--port", str(free_port())]
    return subprocess.run(command, timeout=300, **kwargs)


def test_a_spawned_rank_leaves_with_status_zero_and_its_output_flushed() -> None:
    """``exit_spawned_rank`` leaves through ``os._exit``, which skips the flush of buffered output as
    well as the teardown: piped stdout is block-buffered and the unterminated stderr line is held
    too, so both texts are lost unless it flushes; "not reached" shows it exits."""
    code = (
        "import sys; from scmm_lightning.distributed import exit_spawned_rank; "
        "print('reported', end=''); print('warned', end='', file=sys.stderr); exit_spawned_rank(); print('not reached')"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # buffered, as by default
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert (done.returncode, done.stdout, done.stderr) == (0, "reported", "warned")


@pytest.mark.slow
@pytest.mark.ddp
def test_spawned_ranks_exit_cleanly_run_after_run(tmp_path: Path) -> None:
    """Before ``exit_spawned_rank``, 4 of 80 runs of this worker died of SIGABRT after writing their
    results (its docstring); 30 clean runs would have caught that with probability ~0.8."""
    for run in range(30):
        done = run_worker(tmp_path / f"r{run}", capture_output=True, text=True)
        assert done.returncode == 0, f"run {run}: {done.stderr[-2000:]}"


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    out = tmp_path_factory.mktemp("ddp") / "result"
    run_worker(out, check=True)
    return [torch.load(f"{out}.rank{r}", weights_only=False) for r in range(2)]


@pytest.mark.ddp
def test_loss_and_aggregator_gradients_match_one_process(ranks: list[dict]) -> None:
    g = global_inputs()
    b = g["x"].shape[0]
    z = g["z"].clone().requires_grad_(True)
    v = g["values"].clone().requires_grad_(True)
    inputs = torch.cat([g["x"], g["masked"]])
    sample = torch.arange(z.shape[0]) % b
    sim = similarity_matrix(z, z)
    logits = masked_logits(sim, 0.5)
    loss_c = SoftContrastiveLoss(0.5, 0.6, 0.3)(sim, inputs, sample, logits=logits)
    loss_r = ((SimilarityAggregator(0.5)(sim, v, logits=logits) - g["target"]) ** 2).mean()
    (loss_c + loss_r).backward()
    for r in ranks:
        torch.testing.assert_close(r["loss_pair"], torch.stack([loss_c, loss_r]).detach(), **TOL)
        torch.testing.assert_close(r["grad_z"], z.grad[r["idx"]], **TOL)
        torch.testing.assert_close(r["grad_v"], v.grad[r["idx"]], **TOL)


@pytest.mark.ddp
def test_module_losses_and_parameter_gradients_match_one_process(ranks: list[dict]) -> None:
    g = global_inputs()
    torch.manual_seed(0)
    module = SCMMPretraining(num_channels=g["x"].shape[1], num_bands=g["x"].shape[2], mask_num=1).eval()
    losses = module.compute_losses(g["x"], None, masked=g["masked"])
    losses["loss"].backward()
    for r in ranks:
        for k, v in losses.items():
            torch.testing.assert_close(r["module_losses"][k], v.detach(), **TOL)
        for name, p in module.named_parameters():
            torch.testing.assert_close(r["module_grads"][name], p.grad, **TOL, msg=name)


@pytest.mark.ddp
def test_local_negatives_switch_changes_the_loss(ranks: list[dict]) -> None:
    """global_negatives=False under DDP: each rank's loss is that of one process on its own rows
    alone (a different objective from the global batch's)."""
    g = global_inputs()
    torch.manual_seed(0)
    m = g["masked"].shape[0] // g["x"].shape[0]
    module = SCMMPretraining(num_channels=g["x"].shape[1], num_bands=g["x"].shape[2], mask_num=m).eval()
    half = g["x"].shape[0] // 2
    masked = g["masked"].view(m, -1, *g["x"].shape[1:])[:, :half].reshape(-1, *g["x"].shape[1:])
    with torch.no_grad():
        alone = module.compute_losses(g["x"][:half], None, masked=masked)["contrastive"]
    torch.testing.assert_close(ranks[0]["per_rank_contrastive"], alone, **TOL)
    assert abs(alone.item() - ranks[0]["module_losses"]["contrastive"].item()) > 1e-3


@pytest.mark.ddp
def test_time_soft_weights_match_one_process(ranks: list[dict]) -> None:
    """soft_weights_from=time under DDP: recordings and times are gathered with the rows, so the
    mean of the ranks' losses is one process's loss on the global batch (and differs from the
    input-space weights' loss)."""
    g = global_inputs()
    torch.manual_seed(0)
    module = SCMMPretraining(
        num_channels=g["x"].shape[1], num_bands=g["x"].shape[2], mask_num=1, soft_weights_from="time", time_radius=5
    ).eval()
    with torch.no_grad():
        whole = module.compute_losses(g["x"], None, masked=g["masked"], metadata=g["metadata"])["contrastive"]
    for r in ranks:
        torch.testing.assert_close(r["time_contrastive"], whole, **TOL)
        assert abs(whole.item() - r["module_losses"]["contrastive"].item()) > 1e-3
