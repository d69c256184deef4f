"""Command line: ``python -m scmm_lightning SUBCOMMAND`` / ``scmm-lightning SUBCOMMAND``.

Subcommands: ``fit``, ``validate``, ``test``, ``predict`` (LightningCLI), ``prepare`` (build a
corpus's feature cache; imports no torch), ``transfer`` (the fine-tuning protocol from a
checkpoint), ``reproduce`` (reference settings over seeds) and ``ablations`` (methods x seeds).
Each subcommand's module is imported only when it runs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(args: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if args is None else args)
    command = argv[0] if argv else ""
    if command in ("prepare", "reproduce", "ablations"):
        import importlib

        code = importlib.import_module(f".{command}", __name__).main(argv[1:])
        if code:
            raise SystemExit(code)
        return
    if command == "transfer":
        from .transfer import main as transfer_main

        transfer_main(argv[1:])
        return
    from .lightning_cli import build_cli

    build_cli(None if args is None else argv)  # None: LightningCLI reads sys.argv itself
