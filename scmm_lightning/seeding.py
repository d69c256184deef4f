"""Every seed of a run derives from the one ``seed_everything`` value (``PL_GLOBAL_SEED``)."""

from __future__ import annotations

import os

import numpy as np


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
