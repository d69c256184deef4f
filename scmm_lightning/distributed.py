"""Across DDP ranks: autograd-aware gathering (identity in a single process), and a spawned rank's exit."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import torch
import torch.distributed as dist
from torch import Tensor


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of the default process group, ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums every rank's gradient of the gathered tensor and returns this
    rank's slice, so a loss computed from the global batch differentiates as in one process."""

    @staticmethod
    def forward(ctx, tensor: Tensor) -> Tensor:  # type: ignore[override]
        rank, size = world()
        ctx.rank, ctx.size, ctx.n = rank, size, tensor.shape[0]
        parts = [torch.empty_like(tensor) for _ in range(size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n]


def gather_rows(tensor: Tensor, sync_grads: bool = True) -> Tensor:
    """Concatenate ``tensor`` (same shape on every rank) from all ranks along dim 0, in rank order.

    With ``sync_grads`` the result is differentiable (see :class:`_GatherWithGrad`).
    """
    _, size = world()
    if size == 1:
        return tensor
    if sync_grads and tensor.requires_grad:
        return _GatherWithGrad.apply(tensor)
    parts = [torch.empty_like(tensor) for _ in range(size)]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, dim=0)


def global_view_rows(n_local: int, batch: int, global_negatives: bool, device: torch.device) -> tuple[Tensor, Tensor]:
    """Bookkeeping of the views of a (possibly gathered) batch: ``(sample_index, rows)``.

    Every rank holds ``n_local`` rows: its ``batch`` originals, then their masked copies
    (copy-major). Rank q owns global rows ``q * n_local ...``; global row r there is a view of
    global sample ``q * batch + (r mod n_local) mod batch``. ``sample_index`` (N,) names each global
    row's sample; ``rows`` (n_local,) are the global indices of this rank's rows. Without
    ``global_negatives`` (or in one process) the batch is this rank's alone.
    """
    rank, size = world() if global_negatives else (0, 1)
    global_rows = torch.arange(size * n_local, device=device)
    sample_index = (global_rows // n_local) * batch + (global_rows % n_local) % batch
    rows = rank * n_local + torch.arange(n_local, device=device)
    return sample_index, rows


def gather_objects(obj: object) -> list[object]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank; ``[obj]`` in one process."""
    _, size = world()
    if size == 1:
        return [obj]
    out: list[object] = [None] * size
    dist.all_gather_object(out, obj)
    return out


def exit_spawned_rank() -> NoReturn:
    """End a rank that ``torch.multiprocessing.spawn`` started, once everything it reports is written:
    destroy the default process group (if any), flush stdout and stderr, and leave through
    ``os._exit(0)``, without the interpreter's teardown.

    Why: a gloo worker thread releases a finished collective's tensors just after the collective
    has returned, and for a tensor Python has seen that release takes the GIL. When the rank's
    Python ends first, the thread asks for the GIL while the interpreter finalizes, is ended by
    ``pthread_exit`` inside a ``noexcept`` destructor, and the process dies of SIGABRT
    ("terminate called without an active exception"): spawn reports the rank failed although
    its results are written (torch 2.13, ``tests/ddp_worker.py``: 4 of 80 runs on 2 cores; the
    core dump's aborting thread was ``ProcessGroupGloo::runLoop`` destroying an
    ``AsyncAllreduceWork`` in ``take_gil`` while the main thread was in ``Py_FinalizeEx``). Neither
    a file store in place of the TCP store (1 of 51 runs) nor ``destroy_process_group`` closes
    the race; skipping the teardown does, and a spawned rank has nothing else to tear down (a
    forked child leaves the same way). A ``multiprocessing`` queue's data is sent by a feeder
    thread: ``queue.close(); queue.join_thread()`` before calling this.
    """
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
