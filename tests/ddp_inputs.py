"""The global batch shared by tests/ddp_worker.py and tests/test_distributed.py."""

from __future__ import annotations

import torch

from scmm_lightning.model import Masking


def global_inputs(b: int = 8, c: int = 6, f: int = 5, mask_num: int = 1) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(123)
    x = torch.rand(b, c, f, generator=gen)
    masked, _ = Masking("hybrid", 0.5, 0.3, mask_num)(x, gen)
    n = b * (mask_num + 1)
    return {
        "x": x,
        "masked": masked,  # copy-major: row k * b + i is copy k of sample i
        "z": torch.randn(n, 16, generator=gen),
        "values": torch.randn(n, c * f, generator=gen),
        "target": torch.rand(n, c * f, generator=gen),
        # metadata of the originals: windows of two subjects' recordings, some a few windows apart,
        # and ranks holding windows of the same recording (time weights must see across ranks)
        "metadata": {
            "subject": torch.arange(b) % 2 + 1,
            "session": torch.ones(b, dtype=torch.long),
            "trial": (torch.arange(b) // 3) % 2 + 1,
            "window": torch.arange(b) * 2,
        },
    }
