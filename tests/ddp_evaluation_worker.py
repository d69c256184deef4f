"""Run the evaluation protocol on a fixed toy target in one process and in 2 gloo processes.

python tests/ddp_evaluation_worker.py OUT   ->  OUT.single, OUT.rank0, OUT.rank1
"""

from __future__ import annotations

import os
import socket
import sys

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from scmm_lightning.datamodules import WindowDataset
from scmm_lightning.distributed import exit_spawned_rank
from scmm_lightning.evaluation import FinetuneConfig, FlattenFeatures, run_protocol
from scmm_lightning.model import CNNEncoder


def toy(
    subjects: int = 3, trials: int = 8, windows: int = 6, signal: float = 0.8
) -> tuple[dict, WindowDataset, WindowDataset]:
    """Subjects x alternating-label trials x windows of 6 x 5 features shifted by ``signal`` per
    class; trials 1-6 train, the rest test."""
    rng = np.random.default_rng(0)
    n = subjects * trials * windows
    grid = np.meshgrid(np.arange(1, subjects + 1), np.arange(1, trials + 1), np.arange(windows), indexing="ij")
    meta = {"subject": grid[0].ravel(), "session": np.ones(n, int), "trial": grid[1].ravel(), "window": grid[2].ravel()}
    meta["label"] = (meta["trial"] % 2).astype(int)
    x = rng.standard_normal((n, 6, 5)).astype(np.float32) + meta["label"][:, None, None] * signal
    train = meta["trial"] <= 6
    make = lambda m: WindowDataset(x[m], {k: v[m] for k, v in meta.items()})  # noqa: E731
    torch.manual_seed(0)
    encoders = {"cnn": CNNEncoder(6, 5, widths=(8, 8)), "raw_features": FlattenFeatures(6, 5)}
    return encoders, make(train), make(~train)


def evaluate() -> dict:
    encoders, train, test = toy()
    config = FinetuneConfig(epochs=3, steps=10, eval_every=5, batch_size=16, lr=3e-3)  # LP-FT, the shipped protocol
    res = run_protocol(encoders, train, test, 2, config, 7, ("probe", "finetune"))
    for kind in res.values():
        for per_subject in kind.values():
            for metrics in per_subject.values():
                metrics.pop("confusion", None)
    return res


def run(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.set_num_threads(1)
    torch.save(evaluate(), f"{out}.rank{rank}")
    exit_spawned_rank()  # gloo's threads race the interpreter's teardown: its docstring


if __name__ == "__main__":
    out = sys.argv[1]
    torch.set_num_threads(1)
    torch.save(evaluate(), f"{out}.single")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(run, args=(port, out), nprocs=2, join=True)
