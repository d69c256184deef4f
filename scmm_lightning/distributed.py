"""Autograd-aware gathering across DDP ranks (identity in a single process)."""

from __future__ import annotations

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
