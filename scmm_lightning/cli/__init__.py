"""Command line: ``python -m scmm_lightning SUBCOMMAND`` / ``scmm-lightning SUBCOMMAND``.

Subcommands: ``fit``, ``validate``, ``test``, ``predict`` (LightningCLI), ``prepare`` (build a
corpus's feature cache; imports no torch), ``transfer`` (the fine-tuning protocol from a
checkpoint or an exported encoder), ``export`` (a checkpoint's encoder as a safetensors folder; imports
no Lightning), ``reproduce`` (reference settings over seeds) and ``ablations`` (methods x seeds).
Each subcommand's module is imported only when it runs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

SIGTERM_EXIT = 143  # 128 + SIGTERM, what a shell reports for a process the signal ended


def main(args: Sequence[str] | None = None) -> None:
    """Run one subcommand. A SIGTERM (a scheduler's pre-emption, ``kill``) ends the command with
    exit status 143 and one line, never 0: Lightning turns it into a ``SystemExit`` without a code
    inside fit, and a fit that finished its epochs after the signal still reports it."""
    from ..corpora.base import CorpusError

    try:
        _main(args)
    except CorpusError as err:  # bad corpus input or data settings: the message names the file or option
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except SystemExit as err:
        if type(err).__name__ == "SIGTERMException":  # lightning.pytorch.utilities.exceptions, not imported here
            print("interrupted by SIGTERM: this run stopped before writing its results (exit 143)", file=sys.stderr)
            raise SystemExit(SIGTERM_EXIT) from None
        raise


def _main(args: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if args is None else args)
    command = argv[0] if argv else ""
    if command in ("prepare", "reproduce", "ablations", "export"):
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

    cli = build_cli(None if args is None else argv)  # None: LightningCLI reads sys.argv itself
    if getattr(getattr(cli, "trainer", None), "received_sigterm", False):
        print("interrupted by SIGTERM after the run had finished its work (exit 143)", file=sys.stderr)
        raise SystemExit(SIGTERM_EXIT)
