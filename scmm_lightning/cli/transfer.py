"""``python -m scmm_lightning transfer --config RUN.yaml --ckpt_path CKPT [--out_dir DIR] [overrides]``:
the cross-corpus fine-tuning protocol for an existing checkpoint, with the run's own config.

``transfer --encoder DIR --config TARGET.yaml [--out_dir OUT]``: the same protocol for an exported
encoder folder (``export``) on the corpus the config's data describes (a corpus with a test split, or a
cross-corpus pair's target); the config's model section, if any, only sets the method class (its
encoder comes from DIR). The target must have the encoder's electrodes, in its order.

Under ``torchrun --nproc-per-node W -m scmm_lightning transfer ...`` the W processes join one
gloo process group (it only gathers the results), share the fine-tuning jobs and rank 0 writes the
files."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..callbacks import CrossCorpusTransfer
from ..evaluation import evaluation_target
from ..model.pretrained import check_electrodes, read_config, state_mismatch
from ..seeding import set_run_seed
from .checkpoint_file import load_checkpoint
from .lightning_cli import build_cli


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


def load_weights(model, state: dict, path: Path) -> None:  # noqa: ANN001
    """The checkpoint's weights into the config's model, or one line naming what differs (another
    method, another channel count) instead of a state_dict traceback."""
    weights = state.get("state_dict") or {}
    what = state_mismatch(model.state_dict(), weights)
    if what:
        saved = (state.get("hyper_parameters") or {}).get("_class_path", "another model")
        raise SystemExit(
            f"transfer: {path} holds {saved} weights that do not fit the config's {type(model).__name__} ({what}); "
            "pass the config the checkpoint was trained with (its run's config.yaml), same method and channels"
        )
    model.load_state_dict(weights)


def check_writable(out: Path) -> None:
    """Before the evaluation runs (minutes to hours): the results folder can be created and written."""
    import tempfile

    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-check-"):
            pass
    except OSError as err:
        raise SystemExit(
            f"transfer: cannot write results to {out} ({err.strerror or err}); choose a writable --out_dir"
        ) from None


def main(argv: Sequence[str]) -> None:
    argv = list(argv)
    ckpt = _pop(argv, "--ckpt_path")
    encoder = _pop(argv, "--encoder")
    out_dir = _pop(argv, "--out_dir")
    if ckpt is not None and encoder is not None:
        raise SystemExit(
            "transfer: give --ckpt_path CKPT (a fit's checkpoint) or --encoder DIR (an exported encoder), not both"
        )
    if encoder is not None:
        transfer_encoder(encoder, argv, out_dir)
        return
    if ckpt is None and not any(a in ("-h", "--help") for a in argv):
        raise SystemExit(
            "transfer: --ckpt_path CKPT (a checkpoint written by `fit`) or --encoder DIR (a folder written by `export`) "
            "is required"
        )
    if ckpt is None:  # --help
        build_cli(argv, run=False)
        return
    path = Path(ckpt)
    state = load_checkpoint(path, "transfer")
    cli = build_cli(argv, run=False)
    join_process_group()
    set_run_seed(cli.config.get("seed_everything") or 0)
    load_weights(cli.model, state, path)
    callback = (
        next((c for c in cli.trainer.callbacks if isinstance(c, CrossCorpusTransfer)), None) or CrossCorpusTransfer()
    )
    cli.datamodule.prepare_data()
    cli.datamodule.setup("fit")
    target = out_dir or str(path.parent.parent / "transfer")
    check_writable(Path(target))
    evaluated = evaluation_target(cli.datamodule, required=False)
    if evaluated is None:
        raise SystemExit(
            f"transfer: the data of --config has no test split (e.g. split.kind none): nothing to evaluate {path} on; "
            "use a CrossCorpusDataModule config or set data split.kind"
        )
    callback.run(cli.model, evaluated, target, logger=None)


def transfer_encoder(folder: str, argv: list[str], out_dir: str | None) -> None:
    """The protocol for an exported encoder folder (its weights and architecture via the task's
    ``pretrained``), on the config's evaluation corpus."""
    read_config(folder)  # a bad folder is one line before anything is built
    # a config without a model section gets SCMM's task as the holder of the encoder (the method's own
    # arguments are unused: nothing is pre-trained here)
    cli = build_cli(
        [
            "--model",
            "scmm_lightning.tasks.SCMMPretraining",
            "--trainer.logger",
            "false",
            *argv,
            "--model.init_args.pretrained",
            folder,
        ],
        run=False,
    )
    join_process_group()
    set_run_seed(cli.config.get("seed_everything") or 0)
    callback = (
        next((c for c in cli.trainer.callbacks if isinstance(c, CrossCorpusTransfer)), None) or CrossCorpusTransfer()
    )
    cli.datamodule.prepare_data()
    cli.datamodule.setup("fit")
    evaluated = evaluation_target(cli.datamodule, required=False)
    if evaluated is None:
        raise SystemExit(
            f"transfer: the data of --config has no test split (e.g. split.kind none): nothing to evaluate {folder} on; "
            "set data split.kind (trial/loso/cross_session/leave_subjects_out) or use a CrossCorpusDataModule config"
        )
    check_electrodes(
        read_config(folder), list(evaluated.channel_names), f"the target corpus ({evaluated.corpus_name})", folder
    )
    target = Path(out_dir) if out_dir else Path("runs") / "transfer" / Path(folder).resolve().name
    check_writable(target)
    callback.run(cli.model, evaluated, str(target), logger=None)
