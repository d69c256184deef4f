"""Pre-training throughput: the full SCMM step against its floor, in one process.

(a) SCMM: masking + encoder + projector + soft contrastive loss + aggregator + decoder +
    uncertainty weighting + backward + optimizer step, on B originals (N = B (M + 1) rows).
(b) floor: the same encoder + projector + decoder forward and backward on the same N rows with a
    trivial loss (sum of outputs); no optimizer step.

Both are timed alternately in the same process (this machine is noisy) and the median step time
is reported. Last line: JSON with scmm_samples_per_s, floor_samples_per_s, ratio.

With ``--devices W`` (W > 1) it instead measures the cost of global negatives under DDP on the CPU:
W gloo processes, each with B / W originals and 1 / W of the threads, gathering rows for the loss
and aggregator and averaging gradients as DDP does, against one process on the global batch B.
Last line: JSON with single_process_ms, multi_process_ms, gather_ms (time inside gathers),
overhead_ratio (multi / single).

    python benchmarks/pretrain_throughput.py [--batch 256 --channels 62 --mask-num 1 --steps 30]
    python benchmarks/pretrain_throughput.py --devices 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from scmm_lightning.cli.options import StrictArgumentParser
from scmm_lightning.tasks import SCMMPretraining


def scmm_step(module: SCMMPretraining, optimizer: torch.optim.Optimizer, x: torch.Tensor, gen: torch.Generator) -> None:
    optimizer.zero_grad(set_to_none=True)
    module.compute_losses(x, gen)["loss"].backward()
    optimizer.step()


def floor_step(module: SCMMPretraining, rows: torch.Tensor) -> None:
    module.zero_grad(set_to_none=True)
    h = module.encoder(rows)
    (module.projector(h).sum() + module.decoder(h).sum()).backward()


def ddp_worker(rank: int, args: argparse.Namespace, port: int, out: str) -> None:
    import os

    import torch.distributed as dist

    import scmm_lightning.distributed as sd

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=args.devices)
    torch.set_num_threads(max(1, args.total_threads // args.devices))
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    module = SCMMPretraining(num_channels=args.channels, num_bands=args.bands, mask_num=args.mask_num).train()
    optimizer = module.configure_optimizers()["optimizer"]
    x = torch.rand(args.batch // args.devices, args.channels, args.bands)
    gen = torch.Generator().manual_seed(rank)
    gather_time = [0.0]
    original = sd.gather_rows

    def timed_gather(t: torch.Tensor, sync_grads: bool = True) -> torch.Tensor:
        t0 = time.perf_counter()
        out_t = original(t, sync_grads)
        gather_time[0] += time.perf_counter() - t0
        return out_t

    sd.gather_rows = timed_gather
    import scmm_lightning.tasks.scmm as task_module

    task_module.gather_rows = timed_gather

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        module.compute_losses(x, gen)["loss"].backward()
        grads = [p.grad for p in module.parameters()]
        flat = torch.cat([g.flatten() for g in grads])  # one bucket, as DDP all-reduces after backward
        dist.all_reduce(flat)
        flat /= args.devices
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()
        optimizer.step()

    for _ in range(args.warmup):
        step()
    times = []
    gather_time[0] = 0.0
    for _ in range(args.steps):
        dist.barrier()
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    if rank == 0:
        torch.save({"step": statistics.median(times), "gather": gather_time[0] / args.steps}, out)
    sd.exit_spawned_rank()  # gloo's threads race the interpreter's teardown: its docstring


def run_devices(args: argparse.Namespace) -> None:
    import socket
    import tempfile

    import torch.multiprocessing as mp

    args.total_threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(args.total_threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    module = SCMMPretraining(num_channels=args.channels, num_bands=args.bands, mask_num=args.mask_num).train()
    optimizer = module.configure_optimizers()["optimizer"]
    x = torch.rand(args.batch, args.channels, args.bands)
    gen = torch.Generator().manual_seed(0)
    for _ in range(args.warmup):
        scmm_step(module, optimizer, x, gen)
    single = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        scmm_step(module, optimizer, x, gen)
        single.append(time.perf_counter() - t0)
    single_s = statistics.median(single)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = f"{tmp}/result.pt"
        mp.spawn(ddp_worker, args=(args, port, out), nprocs=args.devices, join=True)
        multi = torch.load(out)
    print(f"global batch {args.batch} originals, {args.channels} channels, {args.total_threads} threads in all")
    print(f"1 process             : {single_s * 1e3:7.2f} ms / step")
    print(
        f"{args.devices} processes (gloo)   : {multi['step'] * 1e3:7.2f} ms / step "
        f"({multi['gather'] * 1e3:.2f} ms of it in forward gathers)"
    )
    print(
        json.dumps(
            {
                "single_process_ms": round(single_s * 1e3, 2),
                "multi_process_ms": round(multi["step"] * 1e3, 2),
                "gather_ms": round(multi["gather"] * 1e3, 2),
                "overhead_ratio": round(multi["step"] / single_s, 3),
            }
        )
    )


def main() -> None:
    parser = StrictArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--channels", type=int, default=62)
    parser.add_argument("--bands", type=int, default=5)
    parser.add_argument("--mask-num", type=int, default=1)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--devices", type=int, default=1, help="> 1: DDP gather overhead on the CPU (gloo)")
    args = parser.parse_args()
    if args.devices > 1:
        run_devices(args)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    torch.set_flush_denormal(True)  # as SCMMPretraining does during fit; applies to both timings
    module = SCMMPretraining(num_channels=args.channels, num_bands=args.bands, mask_num=args.mask_num)
    module.train()
    optimizer = module.configure_optimizers()["optimizer"]  # the optimizer training uses
    x = torch.rand(args.batch, args.channels, args.bands)
    rows = torch.rand(args.batch * (args.mask_num + 1), args.channels, args.bands)
    gen = torch.Generator().manual_seed(0)

    for _ in range(args.warmup):
        scmm_step(module, optimizer, x, gen)
        floor_step(module, rows)
    scmm_times, floor_times = [], []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        scmm_step(module, optimizer, x, gen)
        t1 = time.perf_counter()
        floor_step(module, rows)
        t2 = time.perf_counter()
        scmm_times.append(t1 - t0)
        floor_times.append(t2 - t1)
    scmm_s, floor_s = statistics.median(scmm_times), statistics.median(floor_times)
    print(
        f"batch {args.batch} originals, {rows.shape[0]} rows, {args.channels} channels x {args.bands} bands, "
        f"{torch.get_num_threads()} threads, {args.steps} steps"
    )
    print(f"SCMM step  : {scmm_s * 1e3:7.2f} ms  ({args.batch / scmm_s:8.0f} samples/s)")
    print(f"floor step : {floor_s * 1e3:7.2f} ms  ({args.batch / floor_s:8.0f} samples/s)")
    result = {
        "scmm_samples_per_s": round(args.batch / scmm_s, 1),
        "floor_samples_per_s": round(args.batch / floor_s, 1),
        "ratio": round(floor_s / scmm_s, 3),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
