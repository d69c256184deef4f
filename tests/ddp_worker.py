"""Run SCMM's global-batch computations in W gloo processes on the CPU and save what each rank saw.

    python tests/ddp_worker.py OUT.pt [--world-size 2]

Used by tests/test_distributed.py, which compares the result with one process on the global batch.
Each rank owns a contiguous slice of the originals (and of every masked copy), gathers through
``scmm_lightning.distributed.gather_rows`` and averages gradients over ranks as DDP does.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ddp_inputs import global_inputs  # noqa: E402

from scmm_lightning.distributed import exit_spawned_rank, gather_rows  # noqa: E402
from scmm_lightning.losses import SoftContrastiveLoss  # noqa: E402
from scmm_lightning.model import (
    SimilarityAggregator,  # noqa: E402
    masked_logits,  # noqa: E402
    similarity_matrix,  # noqa: E402
)


def run(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    torch.set_num_threads(1)
    g = global_inputs()
    b = g["x"].shape[0] // world_size
    local = slice(rank * b, (rank + 1) * b)

    # 1) loss + aggregator on projections: owned rows [x_r; masked_r] vs the gathered global batch
    m = g["masked"].shape[0] // g["x"].shape[0]
    idx = torch.cat([torch.arange(rank * b, (rank + 1) * b) + k * g["x"].shape[0] for k in range(m + 1)])
    z_local = g["z"][idx].clone().requires_grad_(True)
    v_local = g["values"][idx].clone().requires_grad_(True)
    inputs_local = torch.cat(
        [g["x"][local], g["masked"].view(m, -1, *g["x"].shape[1:])[:, local].reshape(-1, *g["x"].shape[1:])]
    )
    n_local = z_local.shape[0]
    z_all, v_all = gather_rows(z_local), gather_rows(v_local)
    inputs_all = gather_rows(inputs_local, sync_grads=False)
    rows = rank * n_local + torch.arange(n_local)
    glob = torch.arange(world_size * n_local)
    sample = (glob // n_local) * b + (glob % n_local) % b
    sim = similarity_matrix(z_local, z_all)
    logits = masked_logits(sim, 0.5, rows)
    loss_c = SoftContrastiveLoss(0.5, 0.6, 0.3)(sim, inputs_all, sample, rows, logits=logits)
    rebuilt = SimilarityAggregator(0.5)(sim, v_all, rows, logits=logits)
    loss_r = ((rebuilt - g["target"][idx]) ** 2).mean()
    (loss_c + loss_r).backward()
    grads_z, grads_v = z_local.grad / world_size, v_local.grad / world_size  # DDP averages over ranks

    # 2) the whole module (eval-mode BatchNorm: per-row computation) with identical masks
    torch.manual_seed(0)
    from scmm_lightning.tasks import SCMMPretraining

    module = SCMMPretraining(num_channels=g["x"].shape[1], num_bands=g["x"].shape[2], mask_num=m).eval()
    masked_local = g["masked"].view(m, -1, *g["x"].shape[1:])[:, local].reshape(-1, *g["x"].shape[1:])
    losses = module.compute_losses(g["x"][local], None, masked=masked_local)
    losses["loss"].backward()
    module_grads = {}
    for name, p in module.named_parameters():
        dist.all_reduce(p.grad)
        module_grads[name] = p.grad / world_size
    module_losses = {}
    for k, v in losses.items():
        t = v.detach().clone()
        dist.all_reduce(t)
        module_losses[k] = t / world_size
    # 3) the same module with global_negatives=False: this rank's rows against this rank's rows only
    torch.manual_seed(0)
    per_rank = SCMMPretraining(
        num_channels=g["x"].shape[1], num_bands=g["x"].shape[2], mask_num=m, global_negatives=False
    ).eval()
    with torch.no_grad():
        per_rank_contrastive = per_rank.compute_losses(g["x"][local], None, masked=masked_local)["contrastive"]
    # 4) soft weights from time: each rank's windows' recordings and times gathered with the batch
    torch.manual_seed(0)
    timed = SCMMPretraining(
        num_channels=g["x"].shape[1], num_bands=g["x"].shape[2], mask_num=m, soft_weights_from="time", time_radius=5
    ).eval()
    with torch.no_grad():
        meta_local = {k: v[local] for k, v in g["metadata"].items()}
        timed_contrastive = timed.compute_losses(g["x"][local], None, masked=masked_local, metadata=meta_local)
        timed_contrastive = timed_contrastive["contrastive"].clone()
    dist.all_reduce(timed_contrastive)
    pair = torch.stack([loss_c.detach(), loss_r.detach()])
    dist.all_reduce(pair)
    result = {
        "rank": rank,
        "idx": idx,
        "grad_z": grads_z,
        "grad_v": grads_v,
        "loss_pair": pair / world_size,
        "module_losses": module_losses,
        "module_grads": module_grads,
        "per_rank_contrastive": per_rank_contrastive,
        "time_contrastive": timed_contrastive / world_size,
    }
    torch.save(result, f"{out}.rank{rank}")
    exit_spawned_rank()  # gloo's threads race the interpreter's teardown: its docstring


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--world-size", type=int, default=2)
    parser.add_argument("--port", type=int, default=29533)
    args = parser.parse_args()
    mp.spawn(run, args=(args.world_size, args.port, args.out), nprocs=args.world_size, join=True)


if __name__ == "__main__":
    main()
