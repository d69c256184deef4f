"""``python -m scmm_lightning export --ckpt_path RUN/checkpoints/last.ckpt --out DIR [--overwrite]``:
a fit's encoder as a folder anyone can load without this package's training code, Lightning or
pickle (``model.safetensors``, ``config.json``, ``README.md``; see
:mod:`scmm_lightning.model.pretrained`). Load it with ``scmm_lightning.load_encoder(DIR)``; start a
fit from it with ``--model.init_args.pretrained DIR``; evaluate it with ``transfer --encoder DIR``.

What the folder records comes from the checkpoint itself (every checkpoint of a fit carries the
encoder's arguments and the data's input description); imports no Lightning.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..corpora.base import CorpusError
from ..model.pretrained import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    build_encoder,
    check_weights,
    json_value,
    write_encoder_folder,
)
from .checkpoint_file import load_checkpoint
from .options import StrictArgumentParser

LICENCE_NOTE = (
    "These weights were computed from {corpus}. SEED and SEED-IV (BCMI laboratory, Shanghai Jiao Tong "
    "University) and DEAP (Queen Mary University of London et al.) are distributed under licence agreements: "
    "check that yours permits sharing models derived from the data before publishing this folder, and cite the "
    "corpus. The scmm_lightning code is MIT-licensed; that licence does not cover these weights."
)
METHOD_KEYS = (
    "mask_mode", "mask_ratio", "mask_threshold", "mask_num", "temperature", "upper_bound", "sharpness",
    "soft_weights_from", "lr", "weight_decay", "projection_dim",
)  # fmt: skip


def folder_config(state: dict, ckpt: Path) -> dict[str, Any]:
    """``config.json`` (less the format keys) from a checkpoint's own record."""
    record = state.get("scmm_lightning") or {}
    if not record.get("encoder") or not record.get("input"):
        raise CorpusError(
            f"{ckpt}: this checkpoint carries no encoder/input record (written by an older scmm_lightning, or by a fit "
            "without a datamodule): resume it for one epoch with this version (fit --ckpt_path ... "
            "--trainer.max_epochs <one more>) to write a checkpoint that does"
        )
    if "not_exportable" in record["encoder"]:
        raise CorpusError(f"{ckpt}: {record['encoder']['not_exportable']}")
    hparams = dict(state.get("hyper_parameters") or {})
    method = hparams.pop("_class_path", None)
    hparams.pop("_instantiator", None)
    return {
        "encoder": record["encoder"],
        "input": record["input"],
        "pretraining": {
            "method": method,
            "hyper_parameters": json_value(hparams, strict=False),
            "seed": record.get("seed"),
            "epochs": state.get("epoch", -1) + 1,
            "global_step": state.get("global_step"),
            "checkpoint": ckpt.name,
        },
        "package": {
            "scmm_lightning": record.get("version"),
            "exported_with": __version__,
            "torch": torch.__version__,
            "lightning": state.get("pytorch-lightning_version"),
        },
    }


def encoder_weights(state: dict, ckpt: Path) -> dict[str, torch.Tensor]:
    weights = {
        k.removeprefix("encoder."): v for k, v in (state.get("state_dict") or {}).items() if k.startswith("encoder.")
    }
    if not weights:
        raise CorpusError(f"{ckpt}: no `encoder.*` weights in its state_dict; export needs a pre-training checkpoint")
    return weights


def transfer_section(run_dir: Path) -> str:
    """The run's transfer table and protocol, when the run has one (written at the end of fit, or by
    ``transfer`` into RUN/transfer/)."""
    for folder in (run_dir, run_dir / "transfer"):
        table = folder / "transfer_results.md"
        if table.is_file():
            # the table's own headings one level down, under this card's section
            text = "\n".join(
                "#" + line if line.startswith("#") else line
                for line in table.read_text(encoding="utf-8").strip().splitlines()
            )
            protocol = ""
            config = run_dir / "config.yaml"
            if config.is_file():
                protocol = _protocol_text(config)
            return (
                f"## Transfer results of the pre-training run\n\nFrom `{table.relative_to(run_dir.parent)}`"
                " (per target subject; the controls are a random-init encoder and the raw input features under "
                "the same protocol):\n\n" + text + ("\n\n" + protocol if protocol else "") + "\n"
            )
    return (
        "## Transfer results\n\nThe pre-training run left no transfer table. Evaluate this encoder on a target corpus "
        "with `python -m scmm_lightning transfer --encoder THIS_FOLDER --config TARGET.yaml`.\n"
    )


def _protocol_text(config: Path) -> str:
    import yaml

    try:
        data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        return ""
    callbacks = (data.get("trainer") or {}).get("callbacks") or []
    settings = next(
        (
            c.get("init_args")
            for c in callbacks
            if isinstance(c, dict) and str(c.get("class_path", "")).endswith("CrossCorpusTransfer")
        ),
        None,
    )
    if not settings:
        return ""
    return (
        "Protocol (the run's `CrossCorpusTransfer` settings):\n\n```yaml\n"
        + yaml.safe_dump(settings, sort_keys=False).strip()
        + "\n```"
    )


def model_card(config: dict[str, Any], run_dir: Path) -> str:
    inp, pre = config["input"], config["pretraining"]
    feats = inp.get("features") or {}
    norm = inp["normalization"]
    method = (pre.get("method") or "?").rsplit(".", 1)[-1]
    hp = pre.get("hyper_parameters") or {}
    settings = ", ".join(f"{k}={hp[k]}" for k in METHOD_KEYS if k in hp)
    bands = feats.get("bands")
    stats = "statistics of the training split stored in config.json" if norm.get("shift") is not None else (
        "per subject, over that subject's own windows" if str(norm["kind"]).startswith("subject_") else
        "no single set of statistics (fitted on the windows you pass)"
    )  # fmt: skip
    lines = [
        f"# {method} encoder pre-trained on {inp['corpus']}",
        "",
        f"A differential-entropy (DE) EEG encoder exported by scmm_lightning {__version__} from `{pre['checkpoint']}` "
        f"({pre['epochs']} epochs, {pre['global_step']} steps, seed {pre.get('seed')}).",
        "",
        "## Input",
        "",
        f"- {len(inp['electrodes'])} electrodes, in this order: {', '.join(inp['electrodes'])}",
        f"- {inp['num_bands']} bands" + (f" (Hz): {', '.join(f'{lo:g}-{hi:g}' for lo, hi in bands)}" if bands else ""),
        f"- features: {feats.get('source', 'DE windows')}"
        + (
            f", {feats['window_seconds']:g} s windows, step {feats.get('step_seconds', feats['window_seconds']):g} s"
            if "window_seconds" in feats
            else ""
        )
        + (f", smoothing {feats['smoothing']}" if "smoothing" in feats else ""),
        f"- normalisation: {norm['kind']} ({stats}); `encoder.embed(de_windows)` applies it",
        "",
        "## Pre-training",
        "",
        f"- method: `{pre.get('method')}` ({settings})",
        f"- data: {inp['corpus']}, {inp.get('subjects')} subjects, {inp.get('sessions')} subject-sessions, "
        f"{inp.get('windows')} windows (labels unused)",
        f"- encoder: `{config['encoder']['class_path']}` {json.dumps(config['encoder']['init_args'])}",
        "",
        "## Use",
        "",
        "```python",
        "import scmm_lightning",
        "encoder = scmm_lightning.load_encoder('THIS_FOLDER')  # a torch.nn.Module; no Lightning, no network",
        "h = encoder.embed(de_windows)  # (N, electrodes, bands) DE windows -> (N, features)",
        "```",
        "",
        "Fine-tune it on a corpus: `python -m scmm_lightning transfer --encoder THIS_FOLDER --config TARGET.yaml`; "
        "continue pre-training: `--model.init_args.pretrained THIS_FOLDER`.",
        "",
        transfer_section(run_dir),
        "## Licence",
        "",
        LICENCE_NOTE.format(corpus=inp["corpus"]),
        "",
    ]
    return "\n".join(lines)


def export(ckpt: Path, out: Path, overwrite: bool = False) -> Path:
    state = load_checkpoint(ckpt, "export")
    config = folder_config(state, ckpt)
    encoder = build_encoder(config["encoder"], where=f"{ckpt} (its encoder record)")
    weights = encoder_weights(state, ckpt)
    check_weights(encoder, weights, ckpt)
    encoder.load_state_dict(weights)
    return write_encoder_folder(out, encoder, config, model_card(config, ckpt.parent.parent), overwrite)


def main(argv: Sequence[str]) -> int:
    p = StrictArgumentParser(
        prog="python -m scmm_lightning export",
        description=f"Export a fit's encoder as a folder: {WEIGHTS_FILE} (safetensors, no pickle), {CONFIG_FILE} "
        "(architecture, electrodes, bands, window, normalisation and statistics, pre-training settings) and a "
        "README.md model card. Load it with scmm_lightning.load_encoder(DIR).",
    )
    p.add_argument("--ckpt_path", required=True, help="a checkpoint written by fit (RUN/checkpoints/last.ckpt)")
    p.add_argument("--out", required=True, help="the folder to write (must not exist or be empty, unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing folder (once the new one is whole)")
    args = p.parse_args(list(argv))
    out = export(Path(args.ckpt_path), Path(args.out), args.overwrite)
    print(f"exported {args.ckpt_path} -> {out} ({', '.join(sorted(f.name for f in out.iterdir()))})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
