"""Reading a checkpoint file safely (torch only: ``export`` uses it without importing Lightning)."""

from __future__ import annotations

from pathlib import Path

import torch


def load_checkpoint(path: str | Path, command: str) -> dict:
    """A checkpoint's contents, loaded with ``weights_only=True``: a file whose pickle would run code
    is refused (never executed), a truncated or foreign file is one short error naming the path."""
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"{command}: checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError ... for bad files
        raise SystemExit(
            f"{command}: cannot load checkpoint {path}: {type(err).__name__}: {str(err).splitlines()[0]}\n"
            "It is truncated, not a checkpoint written by `fit`, or holds objects other than weights and "
            "plain values (refused: loading them could run code)."
        ) from None
