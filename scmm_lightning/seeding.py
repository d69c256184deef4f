"""Every seed of a run derives from the one ``seed_everything`` value (``PL_GLOBAL_SEED``)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import numpy as np
import torch


def run_seed() -> int:
    """The run's base seed as ``seed_everything`` set it (0 when unset)."""
    return int(os.environ.get("PL_GLOBAL_SEED", 0))


def derive_seed(*parts: int) -> int:
    """A 63-bit seed derived from integers (base seed, rank, epoch, batch, subject, ...) without
    collisions in practice."""
    state = np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def subject_seed(seed: int, subject: int, salt: int = 0) -> int:
    """A 32-bit seed for one evaluation model (one target subject, one method ``salt``)."""
    return int(np.random.SeedSequence([seed & 0xFFFFFFFF, subject, salt]).generate_state(1)[0])


def set_run_seed(seed: int) -> None:
    """Make ``seed`` the run's base seed when ``seed_everything`` has not set one (``transfer``,
    which builds its modules without running ``fit``)."""
    os.environ.setdefault("PL_GLOBAL_SEED", str(seed))


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Draws inside the block come from generators seeded with ``seed``, and on exit every generator
    is as it was: the caller's random streams (a pre-training run between two probe calls, a user's
    dropout) go on as if nothing had drawn.

    On the CPU only the CPU generator is forked and seeded (the same values as ``torch.manual_seed``,
    whose wrapper also seeds every accelerator, or queues the seed for one not yet initialised, at
    ~0.9 ms a call: 96 of them were most of 0.2 s of a 3.2 s batched protocol call). Where CUDA is initialised, or modules are built
    on another default device, ``torch.manual_seed`` seeds them too, and every CUDA device's generator
    is forked with the CPU's. ``torch.random.fork_rng(devices=[])`` around ``torch.manual_seed``, used
    before session 26, restored the CPU generator only and left each CUDA generator re-seeded."""
    on_cpu = torch.empty(()).device.type == "cpu"  # the default device (any torch version, any device context)
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    devices = list(range(torch.cuda.device_count())) if cuda else []
    with torch.random.fork_rng(devices=devices):
        if on_cpu and not cuda:
            torch.default_generator.manual_seed(seed)
        else:
            torch.manual_seed(seed)
        yield
