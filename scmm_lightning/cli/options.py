"""Command-line options are written in full.

argparse accepts any unambiguous prefix of an option by default, so ``real_eeg.py --seed 5`` ran
``--seeds 5``: five seeds, where the user meant the seed 5, without a word; and a command that works
today breaks the day a second option shares its prefix. Every parser of this project refuses
prefixes (``allow_abbrev=False``; LightningCLI's through :class:`~.lightning_cli.ShortErrorParser`),
and the refusal names the options the user may have meant. Imports neither torch nor Lightning.
"""

from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Iterable
from typing import NoReturn

_UNRECOGNIZED = re.compile(r"^unrecognized arguments: (.*)$", re.IGNORECASE)


def unknown_option_hint(message: str, options: Iterable[str]) -> str:
    """argparse's "unrecognized arguments: ..." message with, for each unknown ``--option`` in it,
    the known options it may have meant: those it begins (a prefix, which argparse no longer
    completes), else the closest spellings. Any other message is returned as it is."""
    m = _UNRECOGNIZED.match(message.strip())
    if not m:
        return message
    known = sorted({o for o in options if o.startswith("--")})
    hints = []
    for word in m.group(1).split():
        name = word.split("=", 1)[0]
        if not name.startswith("--") or name in known:
            continue
        begun = [o for o in known if o.startswith(name)]
        meant = begun or difflib.get_close_matches(name, known, n=3, cutoff=0.75)
        if meant:
            why = " (options are written in full, not abbreviated)" if begun else ""
            hints.append(f"{name}: did you mean {' or '.join(meant)}?{why}")
    return "; ".join([message, *hints])


class StrictArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` that refuses option prefixes (``allow_abbrev=False``) and names
    the options an unknown one may have meant; the module docstring says why. Keeps the
    description's line breaks by default (``RawDescriptionHelpFormatter``: the scripts' docstrings
    are their help)."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        super().error(unknown_option_hint(message, self._option_string_actions))
