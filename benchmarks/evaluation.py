"""The evaluation protocol, per-model loop vs batched engine, in ONE run.

    python benchmarks/evaluation.py [--subjects 32] [--epochs 2] [--marginal_epochs N] [--full_epochs 500]
                                    [--device cpu|cuda]
                                    [--lpft_subjects 8] [--lpft_steps 20] [--probe_subjects 15]
                                    [--probe_precision auto|float32|float64] [--float32_precision ieee|torch_default]
                                    [--repeats 3] [--workloads ...] [--engines loop batched old_lbfgs]
                                    [--processes 1 2]

``--engines batched --epochs 500`` times the batched engine alone on the protocol at its full length
(no ratio and no comparison then: ``same_results`` is null); ``benchmarks/device_check.sh`` runs that
and the loop-vs-batched comparison on a GPU.

LP-FT (the shipped recipe and selection): ``--lpft_subjects`` DEAP-shaped subjects x the same 3
rows, each a probe, 3 cross-validation fold models and a refit, ``--lpft_steps`` steps (checkpoint
every tenth); probe and fine-tuning both by the engine measured.
Fine-tuning: a DEAP-shaped target in memory (subjects x 40 trials x 60 one-second windows of 32 x 5
DE, trials 1-24 fine-tune, 25-40 test, binary labels) and the 3 models per subject of a transfer
table (pre-trained encoder, random-init encoder, raw features), ``--epochs`` epochs, projected to
``--full_epochs`` (SEED -> DEAP's 500). ``--marginal_epochs N`` (N > ``--epochs``) times both
engines at N epochs too, in the same repeats, and reports what an epoch adds:
``finetune_per_epoch_speedup`` = (loop at N - loop at ``--epochs``) / (batched at N - batched at
``--epochs``), the ratio a long protocol tends to (null, with a notice, unless both differences are
positive), and the projections from each engine's fixed
cost plus its per-epoch cost (:func:`per_epoch_projection`) instead of scaling the short call, which
carries the fixed cost (building 96 models, gathering their data) ``--full_epochs / --epochs`` times.
Probe: one probe call on ``--probe_subjects`` (15)
SEED-IV-shaped subjects (62 x 5 DE, 24 trials x 21 windows = 504 windows, 16 trials fit/validate, 4
classes), the CNN encoder and the raw features, the 5-value L2 grid; also today's torch L-BFGS probe
of main 11f5091 (one problem at a time), for reference. ``--probe_precision`` overrides the probe
solver's working precision (``logistic.working_dtype``: float32 on the CPU, float64 on a GPU) in
every workload that probes, to compare the two on one machine in one call (session 27: on a GPU, in
float32 the engines chose one L2 differently; ``benchmarks/device_check.sh``'s ``probe_float32``);
the JSON's ``probe_working_dtype`` is the precision the measuring processes solved in.
``--float32_precision torch_default`` runs the protocol without its guard (``protocol.ieee_float32``,
which makes it compute in IEEE float32 whatever the run set): cuDNN then convolves in TF32, torch's
default, so on a GPU the loop engine's ``F.conv1d`` and the batched engine's matrix products differ in
precision (session 28, the H200's LP-FT comparison before the guard: 3 rows beyond the tolerance);
``benchmarks/device_check.sh``'s ``lpft_torch_default`` measures that beside the guarded call. The
JSON's ``protocol_conv_precision`` is cuDNN's convolution setting as the protocol's first encoder
forward found it, in the measuring process (``ieee`` with the guard, ``tf32`` without). Every
configuration runs in its own spawned process (peak resident memory = that process's maximum RSS);
1 and 2 processes (gloo; torch threads = cores / processes). A probe call lasts seconds, so each probe configuration runs once untimed
first (its one-time costs -- BLAS initialisation, the allocator's first requests -- are paid once
per training run, which probes every few epochs); the fine-tuning workloads are timed cold (session
23 timed a second call in the same process too: loop 11.82 vs 11.66 s, batched 2.85 vs 2.83 s, no
bias). Both engines must choose the same epochs and L2 values and agree on every metric to 1e-6
(``same_results``), except that one borderline test window per subject may be predicted differently
(the float32 summation order differs; such flips are counted). That is a tolerance, not a bound:
where two values of a max-pooling window are nearly equal, the engines' different summation orders
can pick different maxima and send that row's gradient to another position (session 23 traced one:
``--workloads finetune_lpft --lpft_subjects 2 --lpft_steps 4``, channel values 6e-8 apart, a
gradient of the last convolution 0.25 apart, Adam's first step then of opposite sign on 27 weights,
2 test windows apart; the default workloads agree). ``--repeats N`` measures every configuration N
times, the repeats interleaved (loop, batched, loop, ...: on a shared machine a noisy minute then
hits both engines), and reports medians, every repeat's seconds and each repeat's speed-up. The
default is 3: on this project's shared 2-core host one repeat in a few runs is far off the others
(session 24: the fine-tuning ratio's repeats 3.36 / 4.19 / 4.15x in one run, 2.34 / 3.98 / 4.05x in
another, each time a slow batched call), so a single repeat's ratio says more about the neighbours
than about the engines; the median of three does not hang on one noisy minute. First line: the
host's float32 matrix product rate (``host_matmul_gflops``), which the fine-tuning ratio moves with
(:func:`matmul_gflops`). Last line: JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import statistics
import time
from collections.abc import Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from scmm_lightning.cli.options import StrictArgumentParser
from scmm_lightning.datamodules import WindowDataset
from scmm_lightning.distributed import exit_spawned_rank
from scmm_lightning.evaluation import FinetuneConfig, FlattenFeatures, run_protocol
from scmm_lightning.model import CNNEncoder

TOLERANCE = 1e-6
FLIPS: list[str] = []  # (row, subject) whose test predictions differ by exactly one window
COMPARED = ("accuracy", "balanced_accuracy", "macro_f1", "val_balanced_accuracy")


def shaped(subjects: int, trials: int, windows: int, channels: int, classes: int, fit_trials: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    grid = np.meshgrid(np.arange(1, subjects + 1), np.arange(1, trials + 1), np.arange(windows), indexing="ij")
    meta = {"subject": grid[0].ravel(), "trial": grid[1].ravel(), "window": grid[2].ravel()}
    meta["session"] = np.ones_like(meta["subject"])
    if classes == 2:  # DEAP: ratings differ per subject
        meta["label"] = rng.integers(0, 2, size=(subjects, trials))[grid[0] - 1, grid[1] - 1].ravel()
    else:
        meta["label"] = meta["trial"] % classes
    x = rng.standard_normal((len(meta["subject"]), channels, 5)).astype(np.float32)
    x += 0.5 * meta["label"][:, None, None]
    train = meta["trial"] <= fit_trials
    return (
        WindowDataset(x[train], {k: v[train] for k, v in meta.items()}),
        WindowDataset(x[~train], {k: v[~train] for k, v in meta.items()}),
    )


PROBE_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0)  # the "5 L2 values" of the probe workload


def deap_shaped(subjects: int) -> tuple[WindowDataset, WindowDataset]:
    return shaped(subjects, 40, 60, 32, 2, 24)


def old_probe_call(encoders, train, test, grid) -> None:  # noqa: ANN001
    """main 11f5091's probe: torch L-BFGS (strong Wolfe, 100 iterations), one problem at a time."""
    from scmm_lightning.evaluation import FinetuneConfig as Config
    from scmm_lightning.evaluation.probe import embed
    from scmm_lightning.evaluation.protocol import protocol_parts

    def fit(x, y, k, l2):  # noqa: ANN001, ANN202
        mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
        xs = (x - mean) / std
        w = torch.zeros(xs.shape[1], k, requires_grad=True)
        b = torch.zeros(k, requires_grad=True)
        opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=100, line_search_fn="strong_wolfe")

        def closure():  # noqa: ANN202
            opt.zero_grad()
            loss = F.cross_entropy(xs @ w + b, y) + l2 * w.pow(2).sum()
            loss.backward()
            return loss

        opt.step(closure)

    for encoder in encoders.values():
        h = embed(encoder, train.x)
        for part in protocol_parts(train, test, Config()):
            rows = part.fit | part.val
            for l2 in grid:
                fit(h[part.fit], train.meta["label"][part.fit], 4, l2)
            fit(h[rows], train.meta["label"][rows], 4, grid[0])


def conv_precision() -> str:
    """cuDNN's float32 convolution precision as torch reads it now (``tf32``: torch's default)."""
    conv = getattr(torch.backends.cudnn, "conv", None)  # torch >= 2.9
    return conv.fp32_precision if conv is not None else ("tf32" if torch.backends.cudnn.allow_tf32 else "ieee")


def workload(kind: str, engine: str, args: dict) -> tuple[float, dict, str | None]:
    torch.manual_seed(0)
    device = torch.device(args["device"])
    if kind in ("finetune", "finetune_long", "finetune_lpft"):
        train, test = deap_shaped(args["lpft_subjects" if kind == "finetune_lpft" else "subjects"])
        encoders = {
            "pretrained": CNNEncoder(32, 5),
            "random_init": CNNEncoder(32, 5),
            "raw_features": FlattenFeatures(32, 5),
        }
        kinds, classes = ("finetune",), 2
        if kind != "finetune_lpft":  # the issue's workload: the authors' reference recipe (fresh head, epochs), a
            # hold-out; finetune_long: the same at --marginal_epochs
            epochs = args["marginal_epochs"] if kind == "finetune_long" else args["epochs"]
            config = FinetuneConfig(
                epochs=epochs, batch_size=128, engine=engine, recipe="reference", selection="holdout"
            )
        else:  # the shipped recipe and selection (probe, 3 cross-validation folds + a refit per subject and row,
            # LP-FT from the probe), a shorter step budget; the loop engine probes one problem at a time too
            steps = args["lpft_steps"]
            config = FinetuneConfig(engine=engine, steps=steps, eval_every=max(1, steps // 10))
    else:
        train, test = shaped(args["probe_subjects"], 24, 21, 62, 4, 16)
        encoders = {"cnn": CNNEncoder(62, 5), "raw_features": FlattenFeatures(62, 5)}
        kinds, classes = ("probe",), 4
        # the shipped selection (3-fold cross-validation, then a refit) over the 5-value grid
        config = FinetuneConfig(engine="batched" if engine == "old_lbfgs" else engine)
    encoders = {k: v.to(device) for k, v in encoders.items()}
    seen: list[str] = []  # the convolution precision the protocol's first encoder forward ran under

    def record(*_) -> None:  # noqa: ANN002
        seen.append(conv_precision())
        for handle in handles:  # once: no cost on the forwards timed
            handle.remove()

    through_protocol = engine != "old_lbfgs"  # main 11f5091's probe calls the encoders outside run_protocol
    handles = [encoder.register_forward_pre_hook(record) for encoder in encoders.values()] if through_protocol else []
    if dist.is_initialized():
        dist.barrier()
    t0 = time.perf_counter()
    if engine == "old_lbfgs":
        old_probe_call(encoders, train, test, PROBE_GRID)
        res = {}
    else:
        res = run_protocol(encoders, train, test, classes, config, 0, kinds, l2_grid=PROBE_GRID)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    for per_method in res.values():
        for per_subject in per_method.values():
            for metrics in per_subject.values():
                metrics.pop("confusion", None)
    return seconds, res, seen[0] if seen else None


def worker(rank: int, size: int, port: int, kind: str, engine: str, args: dict, queue) -> None:  # noqa: ANN001
    if size > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=size)
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // size))
    from scmm_lightning.evaluation import logistic

    if args["float32_precision"] == "torch_default":  # the protocol without its IEEE float32 guard (docstring)
        from scmm_lightning.evaluation import protocol

        protocol.ieee_float32 = contextlib.nullcontext
    if args["probe_precision"] != "auto":  # the probe solver's working precision, overridden (module docstring)
        dtype = getattr(torch, args["probe_precision"])
        logistic.working_dtype = lambda device: dtype
    used = str(logistic.working_dtype(torch.device(args["device"]))).removeprefix(
        "torch."
    )  # what this process solves in
    if kind == "probe":  # a call of seconds: its first-call costs (BLAS, allocator) untimed, as in a run
        workload(kind, engine, args)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    seconds, res, conv = workload(kind, engine, args)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak = usage.ru_maxrss / 1024  # MiB (Linux: KiB)
    if rank == 0:  # minor page faults of the timed call: fresh pages the kernel zeroed (scmm_lightning/allocator.py)
        queue.put((seconds, res, peak, usage.ru_minflt - faults, used, conv))
    queue.close()
    queue.join_thread()  # sent before the exit below, which skips the feeder thread's own flush
    exit_spawned_rank()  # gloo's threads race the interpreter's teardown: its docstring


def measure(kind: str, engine: str, size: int, args: dict) -> tuple[float, dict, float, int, str, str | None]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(
        worker, args=(size, port, kind, engine, args, queue), nprocs=size, join=True, start_method="spawn"
    )
    return queue.get()


def per_epoch_projection(short: float, long: float, e_short: int, e_long: int, full: int) -> tuple[float, float]:
    """Seconds an epoch adds and the protocol's seconds at ``full`` epochs, from one engine's times at
    ``e_short`` and ``e_long`` epochs: the line through both (a fixed cost plus a cost per epoch)."""
    per_epoch = (long - short) / (e_long - e_short)
    return per_epoch, short + (full - e_short) * per_epoch


def epoch_ratio(loop: float, batched: float) -> float | None:
    """loop / batched seconds an epoch adds, rounded; None unless both are positive (an engine whose
    longer calls took no longer than its shorter ones measured the host's noise, not its epochs)."""
    return round(loop / batched, 3) if loop > 0 and batched > 0 else None


def matmul_gflops(device: torch.device, n: int = 2048) -> float:
    """This host's float32 product of two n x n matrices, GFLOP/s (the best of 5 timings of 3
    products, on every core). The batched fine-tuning engine spends 40-62% of its time in matrix
    products, the loop's small operations are bound by their number, so the fine-tuning ratio moves
    with this figure: session 22's host did 325 GFLOP/s and ran the ratio at ~4x, session 25's (an
    AMD EPYC, 2 cores) 116-183 GFLOP/s across the session and 2.96-3.84x."""
    a = torch.randn(n, n, device=device)
    seconds = []
    for _ in range(6):  # the first is a warm-up
        t0 = time.perf_counter()
        for _product in range(3):
            a @ a
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - t0)
    return 3 * 2 * n**3 / min(seconds[1:]) / 1e9


def mismatches(a: dict, b: dict, keys: Sequence[str]) -> list[str]:
    """Where two result sets differ: a chosen value (epoch, L2) or a metric beyond the tolerance."""
    found = []
    for kind in a:
        for name in a[kind]:
            for subject, ra in a[kind][name].items():
                rb = b[kind][name][subject]
                diffs = [f"{k} {ra.get(k)} vs {rb.get(k)}" for k in keys if ra.get(k) != rb.get(k)]
                # a borderline test window may flip with the float32 summation order: at most one per subject
                flips = round(abs(ra["accuracy"] - rb["accuracy"]) * ra["n_test"])
                if flips > 1 or (flips == 0 and any(abs(ra[m] - rb[m]) > TOLERANCE for m in COMPARED if m in ra)):
                    diffs.append(f"metrics {[(m, round(ra[m], 6), round(rb[m], 6)) for m in COMPARED if m in ra]}")
                elif flips == 1:
                    FLIPS.append(f"{kind}/{name}/subject {subject}")
                found += [f"{kind}/{name}/subject {subject}: {d}" for d in diffs]
    return found


def main() -> None:
    p = StrictArgumentParser(description=__doc__)
    p.add_argument("--subjects", type=int, default=32)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--full_epochs", type=int, default=500)
    p.add_argument(
        "--marginal_epochs",
        type=int,
        default=0,
        help="also time both engines' fine-tuning at this many epochs (> --epochs) and report the ratio of what "
        "an epoch adds (finetune_per_epoch_speedup) and projections from it; 0: off",
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="process counts to measure (CPU)")
    p.add_argument("--lpft_subjects", type=int, default=8, help="DEAP-shaped subjects of the LP-FT workload")
    p.add_argument("--lpft_steps", type=int, default=20, help="LP-FT steps per model (the configs ship 200)")
    p.add_argument("--probe_subjects", type=int, default=15, help="SEED-IV-shaped subjects of the probe workload")
    p.add_argument(
        "--probe_precision",
        choices=("auto", "float32", "float64"),
        default="auto",
        help="the probe solver's working precision (auto: logistic.working_dtype's, float32 on the CPU, float64 on a "
        "GPU)",
    )
    p.add_argument(
        "--float32_precision",
        choices=("ieee", "torch_default"),
        default="ieee",
        help="ieee: the protocol as shipped; torch_default: without its guard (protocol.ieee_float32), cuDNN's "
        "convolutions in TF32 as torch ships them, to measure on a GPU what the guard changes",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="measure every configuration this many times, interleaved; medians (default 3: one noisy repeat "
        "does not decide a ratio)",
    )
    p.add_argument(
        "--engines",
        nargs="+",
        choices=("loop", "batched", "old_lbfgs"),
        default=["loop", "batched", "old_lbfgs"],
        help="which engines to run (default: all); without both loop and batched no ratio or equality is "
        "reported, e.g. `--engines batched --epochs 500` times the batched protocol at its full length",
    )
    p.add_argument(
        "--workloads",
        nargs="+",
        choices=("finetune", "finetune_lpft", "probe"),
        default=["finetune", "finetune_lpft", "probe"],
        help="which workloads to measure (default: all)",
    )
    args = vars(p.parse_args())
    if args["marginal_epochs"] and args["marginal_epochs"] <= args["epochs"]:
        p.error(f"--marginal_epochs {args['marginal_epochs']} must exceed --epochs {args['epochs']} (or be 0: off)")
    if args["marginal_epochs"] and "finetune" not in args["workloads"]:
        p.error("--marginal_epochs times the finetune workload: add finetune to --workloads (or drop the option)")
    if args["marginal_epochs"] and args["device"] == "cpu" and 1 not in args["processes"]:
        # what an epoch adds is measured in one process (the 1-process call is its baseline)
        p.error("--marginal_epochs compares the 1-process calls: add 1 to --processes (or drop the option)")
    out: dict = {"device": args["device"], "cores": os.cpu_count()}
    out["host_matmul_gflops"] = round(matmul_gflops(torch.device(args["device"])))
    print(f"{args['device']}: 2048 x 2048 float32 product {out['host_matmul_gflops']} GFLOP/s", flush=True)
    sizes = args["processes"] if args["device"] == "cpu" else [1]
    engines = {"finetune": ("loop", "batched"), "finetune_long": ("loop", "batched"),
               "finetune_lpft": ("loop", "batched"), "probe": ("old_lbfgs", "loop", "batched")}  # fmt: skip
    kinds = list(args["workloads"])
    if args["marginal_epochs"] and "finetune" in kinds:  # the same workload at --marginal_epochs, in the same repeats
        kinds.insert(kinds.index("finetune") + 1, "finetune_long")
    times: dict = {}  # every repeat's seconds per configuration
    faults_seen: dict = {}  # every repeat's minor page faults per configuration
    results: dict = {}  # the first repeat's results: what the engines are compared on
    for repeat in range(args["repeats"]):  # repeats interleaved: a noisy minute hits both engines alike
        for kind in kinds:
            for engine in (e for e in engines[kind] if e in args["engines"]):
                for size in sizes if engine != "old_lbfgs" and kind != "finetune_long" else [1]:
                    key = (kind, engine, size)
                    seconds, res, peak, faults, used, conv = measure(kind, engine, size, args)
                    if conv is not None:  # read inside the protocol, in the measuring process
                        out["protocol_conv_precision"] = conv
                    if kind in ("finetune_lpft", "probe"):  # it probes: the solver working precision, measuring process
                        out["probe_working_dtype"] = used
                    times.setdefault(key, []).append(seconds)
                    faults_seen.setdefault(key, []).append(faults)
                    results.setdefault(key, res)
                    name = f"{kind}_{engine}_{size}p"
                    out[f"{name}_seconds"] = round(statistics.median(times[key]), 2)
                    out[f"{name}_peak_mib"] = max(out.get(f"{name}_peak_mib", 0), round(peak))
                    out[f"{name}_minor_faults"] = round(statistics.median(faults_seen[key]))
                    if args["repeats"] > 1:
                        out[f"{name}_seconds_runs"] = [round(t, 2) for t in times[key]]
                    print(
                        f"{kind:8s} {engine:9s} {size} process(es): {seconds:8.2f} s, peak {peak:6.0f} MiB, "
                        f"{faults} minor page faults (rank 0)"
                        + (f", repeat {repeat + 1}" if args["repeats"] > 1 else ""),
                        flush=True,
                    )
    runs = {key: (statistics.median(times[key]), res) for key, res in results.items()}
    checks, lines = {}, []
    last_line = None  # what an epoch adds (--marginal_epochs), printed after the workloads' lines
    keys = {"finetune": ("best_epoch",), "finetune_long": ("best_epoch",), "finetune_lpft": ("best_step",),
            "probe": ("l2",)}  # fmt: skip
    names = {"finetune": "finetune", "finetune_long": f"finetune at {args['marginal_epochs']} epochs",
             "finetune_lpft": "LP-FT", "probe": "probe"}  # fmt: skip
    for kind in kinds:
        if kind == "finetune":
            out.update(subjects=args["subjects"], models=3 * args["subjects"], epochs=args["epochs"])
            for engine in ("loop", "batched"):  # the protocol at full length, from the epochs measured
                if (kind, engine, 1) in runs:
                    minutes = runs[(kind, engine, 1)][0] * args["full_epochs"] / args["epochs"] / 60
                    out[f"projected_minutes_{engine}"] = round(minutes, 1)
        if kind == "finetune_long":
            out.update(marginal_epochs=args["marginal_epochs"])
            per_epoch = {}
            for engine in ("loop", "batched"):  # fixed cost + per-epoch cost, medians of the repeats
                if (kind, engine, 1) in runs and ("finetune", engine, 1) in runs:
                    per_epoch[engine], full = per_epoch_projection(
                        runs[("finetune", engine, 1)][0], runs[(kind, engine, 1)][0], args["epochs"],
                        args["marginal_epochs"], args["full_epochs"],
                    )  # fmt: skip
                    out[f"finetune_{engine}_per_epoch_seconds"] = round(per_epoch[engine], 3)
                    out[f"projected_minutes_{engine}_from_per_epoch"] = round(full / 60, 1)
            if len(per_epoch) == 2:
                out["finetune_per_epoch_speedup"] = epoch_ratio(per_epoch["loop"], per_epoch["batched"])
                if args["repeats"] > 1:  # each repeat's own: its four calls measured within minutes of each other
                    added = {
                        engine: [b - a for a, b in zip(times[("finetune", engine, 1)], times[(kind, engine, 1)])]
                        for engine in per_epoch
                    }
                    out["finetune_per_epoch_speedup_runs"] = [
                        epoch_ratio(a, b) for a, b in zip(added["loop"], added["batched"])
                    ]
                ratio = out["finetune_per_epoch_speedup"]
                if ratio is None:
                    print(
                        "what an epoch adds: not measured, an engine's longer calls took no longer than its shorter "
                        "ones (the host's noise swamped the difference): raise --marginal_epochs or rerun on a "
                        "quieter host",
                        flush=True,
                    )
                last_line = (
                    f"fine-tuning, what an epoch adds ({args['epochs']} -> {args['marginal_epochs']} epochs): loop "
                    f"{per_epoch['loop']:.2f} s, batched {per_epoch['batched']:.2f} s "
                    f"({'no ratio' if ratio is None else f'{ratio:.2f}x'}); projected to {args['full_epochs']} epochs from the "
                    f"fixed and per-epoch costs: {out['projected_minutes_loop_from_per_epoch']} vs "
                    f"{out['projected_minutes_batched_from_per_epoch']} min"
                )
        if kind == "finetune_lpft":
            out.update(lpft_subjects=args["lpft_subjects"], lpft_steps=args["lpft_steps"])
        if kind == "probe":
            out.update(probe_subjects=args["probe_subjects"])
        if kind in ("finetune", "probe") and (kind, "batched", 1) in runs:
            for size in sizes[1:]:
                found = mismatches(runs[(kind, "batched", 1)][1], runs[(kind, "batched", size)][1], keys[kind])
                checks[f"{names[kind]} batched 1 vs {size} processes"] = found
        if (kind, "loop", 1) not in runs or (kind, "batched", 1) not in runs:  # one engine: no ratio, no equality
            for engine in ("loop", "batched"):
                if (kind, engine, 1) in runs:
                    line = f"{names[kind]} {engine} alone: {runs[(kind, engine, 1)][0]:.1f} s"
                    if kind == "finetune":
                        line += (
                            f" (projected to {args['full_epochs']} epochs: {out[f'projected_minutes_{engine}']} min)"
                        )
                    lines.append(line)
            continue
        loop, batched = runs[(kind, "loop", 1)], runs[(kind, "batched", 1)]
        speedup = {"finetune": "finetune_speedup", "finetune_long": "finetune_long_speedup",
                   "finetune_lpft": "lpft_speedup", "probe": "probe_speedup"}[kind]  # fmt: skip
        out[speedup] = round(loop[0] / batched[0], 3)
        if args["repeats"] > 1:  # each repeat's own ratio (loop and batched measured minutes apart)
            out[f"{speedup}_runs"] = [
                round(a / b, 3) for a, b in zip(times[(kind, "loop", 1)], times[(kind, "batched", 1)])
            ]
        checks[f"{names[kind]} loop vs batched"] = mismatches(loop[1], batched[1], keys[kind])
        if kind == "finetune":
            lines.append(
                f"fine-tuning {3 * args['subjects']} models x {args['epochs']} epochs: loop {loop[0]:.1f} s, batched "
                f"{batched[0]:.1f} s ({out[speedup]:.2f}x); projected to {args['full_epochs']} epochs: "
                f"{out['projected_minutes_loop']} vs {out['projected_minutes_batched']} min"
            )
        elif kind == "finetune_long":
            lines.append(
                f"fine-tuning {3 * args['subjects']} models x {args['marginal_epochs']} epochs: loop {loop[0]:.1f} s, "
                f"batched {batched[0]:.1f} s ({out[speedup]:.2f}x)"
            )
        elif kind == "finetune_lpft":
            lines.append(
                f"LP-FT protocol ({args['lpft_subjects']} subjects x 3 rows x (3 folds + refit), "
                f"{args['lpft_steps']} steps): loop {loop[0]:.1f} s, batched {batched[0]:.1f} s ({out[speedup]:.2f}x)"
            )
        else:
            if ("probe", "old_lbfgs", 1) in runs:
                out["probe_speedup_vs_old_lbfgs"] = round(runs[("probe", "old_lbfgs", 1)][0] / batched[0], 3)
            lines.append(f"probe call: loop {loop[0]:.1f} s, batched {batched[0]:.1f} s ({out[speedup]:.2f}x)")
    if last_line is not None:
        lines.append(last_line)
    out["tolerance"] = TOLERANCE
    for name, found in checks.items():
        print(f"{name}: {'same' if not found else f'{len(found)} differences, e.g. ' + '; '.join(found[:3])}")
    print(f"one borderline test window predicted differently (within the stated tolerance): {FLIPS or 'none'}")
    compared = any(name.endswith("loop vs batched") for name in checks)  # None: no two engines were compared
    out["same_results"] = not any(checks.values()) if compared else None
    out["one_window_flips"] = len(FLIPS)
    out["differences"] = {name: len(found) for name, found in checks.items()}
    for line in lines:
        print(line)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
