"""``python -m scmm_lightning transfer --config RUN.yaml --ckpt_path CKPT [--out_dir DIR] [overrides]``:
the cross-corpus fine-tuning protocol for an existing checkpoint, with the run's own config.

Under ``torchrun --nproc-per-node W -m scmm_lightning transfer ...`` the W processes join one
gloo process group (it only gathers the results), share the fine-tuning jobs and rank 0 writes the
files."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..callbacks import CrossCorpusTransfer
from ..evaluation import evaluation_target
from ..seeding import set_run_seed
from .lightning_cli import build_cli, load_checkpoint


def _pop(argv: list[str], flag: str) -> str | None:
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            value = argv[i + 1]
            del argv[i : i + 2]
            return value
        if a.startswith(flag + "="):
            del argv[i]
            return a.split("=", 1)[1]
    return None


def join_process_group() -> None:
    """Started by torchrun (``WORLD_SIZE`` > 1): join its process group so the ranks share the jobs."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")


def main(argv: Sequence[str]) -> None:
    argv = list(argv)
    ckpt = _pop(argv, "--ckpt_path")
    out_dir = _pop(argv, "--out_dir")
    if ckpt is None and not any(a in ("-h", "--help") for a in argv):
        raise SystemExit("transfer: --ckpt_path CKPT is required (a checkpoint written by `fit`)")
    if ckpt is None:  # --help
        build_cli(argv, run=False)
        return
    path = Path(ckpt)
    state = load_checkpoint(path, "transfer")
    cli = build_cli(argv, run=False)
    join_process_group()
    set_run_seed(cli.config.get("seed_everything") or 0)
    cli.model.load_state_dict(state["state_dict"])
    callback = (
        next((c for c in cli.trainer.callbacks if isinstance(c, CrossCorpusTransfer)), None) or CrossCorpusTransfer()
    )
    cli.datamodule.prepare_data()
    cli.datamodule.setup("fit")
    target = out_dir or str(path.parent.parent / "transfer")
    evaluated = evaluation_target(cli.datamodule, required=False)
    if evaluated is None:
        raise SystemExit(
            f"transfer: the data of --config has no test split (e.g. split.kind none): nothing to evaluate {path} on; "
            "use a CrossCorpusDataModule config or set data split.kind"
        )
    callback.run(cli.model, evaluated, target, logger=None)
