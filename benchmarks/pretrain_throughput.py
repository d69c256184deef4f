"""Pre-training throughput: the full SCMM step against its floor, in one process.

(a) SCMM: masking + encoder + projector + soft contrastive loss + aggregator + decoder +
    uncertainty weighting + backward + optimizer step, on B originals (N = B (M + 1) rows).
(b) floor: the same encoder + projector + decoder forward and backward on the same N rows with a
    trivial loss (sum of outputs); no optimizer step.

Both are timed alternately in the same process (this machine is noisy) and the median step time
is reported. Last line: JSON with scmm_samples_per_s, floor_samples_per_s, ratio.

    python benchmarks/pretrain_throughput.py [--batch 256 --channels 62 --mask-num 1 --steps 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from scmm_lightning.tasks import SCMMPretraining


def scmm_step(module: SCMMPretraining, optimizer: torch.optim.Optimizer, x: torch.Tensor, gen: torch.Generator) -> None:
    optimizer.zero_grad(set_to_none=True)
    module.compute_losses(x, gen)["loss"].backward()
    optimizer.step()


def floor_step(module: SCMMPretraining, rows: torch.Tensor) -> None:
    module.zero_grad(set_to_none=True)
    h = module.encoder(rows)
    (module.projector(h).sum() + module.decoder(h).sum()).backward()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--channels", type=int, default=62)
    parser.add_argument("--bands", type=int, default=5)
    parser.add_argument("--mask-num", type=int, default=1)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    torch.set_flush_denormal(True)  # as SCMMPretraining does during fit; applies to both timings
    module = SCMMPretraining(num_channels=args.channels, num_bands=args.bands, mask_num=args.mask_num)
    module.train()
    optimizer = torch.optim.Adam(module.parameters(), lr=5e-4, betas=(0.9, 0.99), weight_decay=3e-4)
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
