"""``python -m scmm_lightning`` / ``scmm-lightning``: dispatch to a subcommand, importing only what it needs."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(args: Sequence[str] | None = None) -> None:
    """Subcommands: ``fit``, ``validate``, ``test``, ``predict`` (LightningCLI), ``prepare`` (build a
    corpus's feature cache; does not import Lightning) and ``transfer`` (run the fine-tuning protocol
    from a checkpoint)."""
    argv = list(sys.argv[1:] if args is None else args)
    if argv[:1] == ["prepare"]:
        from .prepare import main as prepare_main

        code = prepare_main(argv[1:])
        if code:
            raise SystemExit(code)
        return
    if argv[:1] == ["transfer"]:
        from .transfer import main as transfer_main

        transfer_main(argv[1:])
        return
    from .cli import build_cli

    build_cli(None if args is None else argv)  # None: LightningCLI reads sys.argv itself
