"""Electrode registry: canonical upper-case 10-10 names and each corpus's channel order."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

SEED_62: tuple[str, ...] = tuple(
    """FP1 FPZ FP2 AF3 AF4 F7 F5 F3 F1 FZ F2 F4 F6 F8 FT7 FC5 FC3 FC1 FCZ FC2 FC4 FC6 FT8 T7 C5 C3
    C1 CZ C2 C4 C6 T8 TP7 CP5 CP3 CP1 CPZ CP2 CP4 CP6 TP8 P7 P5 P3 P1 PZ P2 P4 P6 P8 PO7 PO5 PO3
    POZ PO4 PO6 PO8 CB1 O1 OZ O2 CB2""".split()
)
"""SEED and SEED-IV electrode order (62 channels)."""

DEAP_32: tuple[str, ...] = tuple(
    """FP1 AF3 F3 F7 FC5 FC1 C3 T7 CP5 CP1 P3 P7 PO3 O1 OZ PZ FP2 AF4 FZ F4 F8 FC6 FC2 CZ C4 T8
    CP6 CP2 P4 P8 PO4 O2""".split()
)
"""DEAP EEG channel order (Geneva layout, first 32 of the 40 recorded channels)."""

CORPUS_CHANNELS: dict[str, tuple[str, ...]] = {
    "seed": SEED_62,
    "seed_iv": SEED_62,
    "deap": DEAP_32,
}


def _ten_ten() -> tuple[str, ...]:
    rows = {
        "FP": "1 Z 2", "AF": "9 7 5 3 1 Z 2 4 6 8 10", "F": "9 7 5 3 1 Z 2 4 6 8 10",
        "FC": "5 3 1 Z 2 4 6", "FT": "9 7 8 10", "C": "5 3 1 Z 2 4 6", "T": "9 7 8 10",
        "CP": "5 3 1 Z 2 4 6", "TP": "9 7 8 10", "P": "9 7 5 3 1 Z 2 4 6 8 10",
        "PO": "9 7 5 3 1 Z 2 4 6 8 10", "O": "9 1 Z 2 10", "I": "1 Z 2",
    }  # fmt: skip
    names = [p + s for p, suffixes in rows.items() for s in suffixes.split()]
    return tuple(dict.fromkeys([*SEED_62, *names, "NZ", "A1", "A2", "M1", "M2"]))


TEN_TEN: tuple[str, ...] = _ten_ten()
"""Electrode registry: every 10-10 position (plus SEED's CB1/CB2, nasion and ear/mastoid references),
SEED's 62 first so that registry order is SEED's order on shared electrodes."""

OLD_1020_NAMES: dict[str, str] = {"T3": "T7", "T4": "T8", "T5": "P7", "T6": "P8"}
"""Old 10-20 names and the 10-10 names of the same positions."""

REFERENCE_ELECTRODES: frozenset[str] = frozenset({"A1", "A2", "M1", "M2"})
"""Ear / mastoid reference electrodes: in the registry, but not scalp EEG for the model."""

_PREFIX = re.compile(r"^EEG[\s_:]+")


def canonical(name: str, aliases: Mapping[str, str] | None = None) -> str:
    """Canonical electrode name: upper case, no ``EEG`` prefix, no reference suffix (``-A1``,
    ``-REF``), old 10-20 names mapped to 10-10 (T3 -> T7, T4 -> T8, T5 -> P7, T6 -> P8), then
    ``aliases`` (keys compared in canonical form)."""
    name = _PREFIX.sub("", name.strip().upper())
    name = name.split("-")[0].strip()
    name = OLD_1020_NAMES.get(name, name)
    if aliases:
        table = {_PREFIX.sub("", k.strip().upper()): v.strip().upper() for k, v in aliases.items()}
        name = table.get(name, name)
    return name


def select_channels(available: Sequence[str], wanted: Sequence[str]) -> list[int]:
    """Indices into ``available`` of the electrodes ``wanted``, in the order of ``wanted``.

    Raises a ``CorpusError`` (one line) naming every wanted electrode that ``available`` lacks, or
    that ``wanted`` lists twice (the same electrode would enter the model twice).
    """
    from .base import CorpusError

    index = {canonical(n): i for i, n in enumerate(available)}
    missing = [n for n in wanted if canonical(n) not in index]
    if missing:
        raise CorpusError(
            f"channels: electrodes {missing} are not in the montage {list(available)}; fix the names or choose a "
            "common montage that both corpora share (e.g. DEAP_32)"
        )
    seen: dict[str, str] = {}
    twice = [n for n in wanted if seen.setdefault(canonical(n), n) is not n]
    if twice:
        raise CorpusError(f"channels: electrodes {twice} are listed twice; list each electrode once")
    return [index[canonical(n)] for n in wanted]
