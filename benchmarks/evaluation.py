"""The fine-tuning protocol on DEAP-shaped targets, in 1 and in 2 processes.

    python benchmarks/evaluation.py [--subjects 32] [--epochs 2] [--full_epochs 500]

A DEAP-shaped target in memory (subjects x 40 trials x 60 one-second windows of 32 x 5 DE, trials
1-24 fine-tune, 25-40 test, binary labels) and the 3 models per subject of a transfer table
(pre-trained encoder, random-init encoder, raw features). Each configuration runs the protocol for
``--epochs`` fine-tuning epochs; the time per epoch is extrapolated to ``--full_epochs`` (the
SEED -> DEAP reference setting's 500). Processes share the machine's cores (torch threads =
cores / processes), and are compared inside this one run. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from scmm_lightning.datamodules import WindowDataset
from scmm_lightning.evaluation import FinetuneConfig, FlattenFeatures, run_protocol
from scmm_lightning.model import CNNEncoder


def deap_shaped(subjects: int) -> tuple[WindowDataset, WindowDataset]:
    rng = np.random.default_rng(0)
    trials, windows = 40, 60
    grid = np.meshgrid(np.arange(1, subjects + 1), np.arange(1, trials + 1), np.arange(windows), indexing="ij")
    meta = {"subject": grid[0].ravel(), "trial": grid[1].ravel(), "window": grid[2].ravel()}
    meta["session"] = np.ones_like(meta["subject"])
    meta["label"] = rng.integers(0, 2, size=(subjects, trials))[grid[0] - 1, grid[1] - 1].ravel()
    x = rng.standard_normal((len(meta["subject"]), 32, 5)).astype(np.float32) + 0.5 * meta["label"][:, None, None]
    train = meta["trial"] <= 24
    return (
        WindowDataset(x[train], {k: v[train] for k, v in meta.items()}),
        WindowDataset(x[~train], {k: v[~train] for k, v in meta.items()}),
    )


def protocol(subjects: int, epochs: int) -> float:
    train, test = deap_shaped(subjects)
    torch.manual_seed(0)
    encoders = {
        "pretrained": CNNEncoder(32, 5),
        "random_init": CNNEncoder(32, 5),
        "raw_features": FlattenFeatures(32, 5),
    }
    config = FinetuneConfig(epochs=epochs, batch_size=128)
    if dist.is_initialized():
        dist.barrier()
    t0 = time.perf_counter()
    run_protocol(encoders, train, test, 2, config, 0, ("finetune",))
    return time.perf_counter() - t0


def worker(rank: int, size: int, port: int, subjects: int, epochs: int, queue) -> None:  # noqa: ANN001
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=size)
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // size))
    seconds = protocol(subjects, epochs)
    if rank == 0:
        queue.put(seconds)
    dist.destroy_process_group()


def in_processes(size: int, subjects: int, epochs: int) -> float:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(worker, args=(size, port, subjects, epochs, queue), nprocs=size, join=True, start_method="spawn")
    return queue.get()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--subjects", type=int, default=32)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--full_epochs", type=int, default=500)
    args = p.parse_args()
    torch.set_num_threads(os.cpu_count() or 2)
    one = protocol(args.subjects, args.epochs)
    two = in_processes(2, args.subjects, args.epochs)
    models = 3 * args.subjects
    scale = args.full_epochs / args.epochs
    print(f"{args.subjects} DEAP-shaped subjects x 3 models, {args.epochs} fine-tuning epochs each")
    print(f"  1 process:   {one:8.1f} s  (projected to {args.full_epochs} epochs: {one * scale / 60:.1f} min)")
    print(f"  2 processes: {two:8.1f} s  (projected to {args.full_epochs} epochs: {two * scale / 60:.1f} min)")
    print(f"  speed-up 2 vs 1 process: {one / two:.2f}x on {os.cpu_count()} cores")
    print(
        json.dumps(
            {
                "subjects": args.subjects,
                "models": models,
                "epochs": args.epochs,
                "seconds_1_process": round(one, 2),
                "seconds_2_processes": round(two, 2),
                "speedup": round(one / two, 3),
                "projected_minutes_1_process": round(one * scale / 60, 1),
                "projected_minutes_2_processes": round(two * scale / 60, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
