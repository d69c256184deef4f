"""Electrodes of recordings in any format MNE reads: each file's header normalised to the 10-10
registry (non-EEG channels dropped by MNE type and by name), and the montage a set of recordings
is read on (given, or the electrodes every recording has)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .base import CorpusError
from .channels import REFERENCE_ELECTRODES, TEN_TEN, canonical

EEG_TYPES = frozenset({"eeg", "seeg", "ecog"})
"""MNE channel types kept; every other type (ecg, eog, emg, stim, misc, ...) is dropped."""
NON_EEG_NAMES = frozenset(
    {"ECG", "EKG", "EOG", "HEOG", "VEOG", "EMG", "STATUS", "TRIGGER", "STI 014", "RESP", "GSR", "PHOTIC", "EVENT"}
    | REFERENCE_ELECTRODES
)
"""Dropped by (canonical) name whatever type the file gives them; EDF stores every channel as EEG."""

_TYPE_INFERRING = {".edf", ".bdf", ".gdf"}


@dataclass(frozen=True)
class Header:
    """What a file's header says, after channel normalisation."""

    path: Path
    sfreq: float
    n_times: int
    channels: dict[str, str]  # canonical name -> name in the file (EEG electrodes of the registry)
    dropped: tuple[str, ...]  # names in the file that are not EEG electrodes
    unmatched: tuple[str, ...]  # EEG-typed names that match no registry electrode

    @property
    def duration(self) -> float:
        return self.n_times / self.sfreq


def quiet_mne():
    """MNE's per-call ``verbose`` swaps a global log level, which races across threads; hold one
    level around the whole parallel section instead."""
    import mne

    return mne.utils.use_log_level("ERROR")


def open_raw(path: Path):
    import mne

    kwargs = {"infer_types": True} if path.suffix.lower() in _TYPE_INFERRING else {}
    try:
        return mne.io.read_raw(path, preload=False, verbose="ERROR", **kwargs)
    except FileNotFoundError:
        raise CorpusError(f"{path}: file missing") from None
    except Exception as err:  # MNE raises many types for unknown / corrupt files
        raise CorpusError(f"{path}: MNE cannot read this file ({type(err).__name__}: {err})") from err


def check_edf_size(path: Path) -> None:
    """EDF / BDF: the file must hold every data record its header announces. MNE reads a truncated
    file with a warning (silenced in the parallel reader) and fewer samples, so a cut file would
    give fewer windows without a word; this reads the header (256 + 256 x signals bytes) itself."""
    width = {".edf": 2, ".bdf": 3}.get(path.suffix.lower())
    if width is None:
        return
    with open(path, "rb") as fh:
        head = fh.read(256)
        try:
            n_records, n_signals = int(head[236:244].strip() or b"-1"), int(head[252:256].strip())
            signal_header = fh.read(256 * n_signals)
            offset = 216 * n_signals  # samples per record: the 8-character fields after 216 per signal
            samples = [int(signal_header[offset + 8 * i : offset + 8 * i + 8].strip()) for i in range(n_signals)]
        except ValueError:
            return  # not a header we can read: MNE will say so
    if n_records < 0:
        return  # unknown record count (allowed while recording): nothing to check against
    expected = 256 * (n_signals + 1) + n_records * sum(samples) * width
    size = path.stat().st_size
    if size < expected:
        raise CorpusError(
            f"{path}: truncated: its header announces {n_records} data records ({expected} bytes) but the file has "
            f"{size} bytes; copy it again from the original"
        )


def read_header(path: Path, aliases: Mapping[str, str], drop: frozenset[str]) -> Header:
    """The file's sampling rate, length and channels, normalised with ``aliases``; ``drop``: more
    (canonical) names to drop."""
    if path.is_file():
        check_edf_size(path)
    raw = open_raw(path)
    channels: dict[str, str] = {}
    dropped, unmatched = [], []
    for name, kind in zip(raw.ch_names, raw.get_channel_types()):
        c = canonical(name, aliases)
        if kind not in EEG_TYPES or c in NON_EEG_NAMES or c in drop:
            dropped.append(name)
        elif c not in TEN_TEN:
            unmatched.append(name)
        elif c in channels:
            raise CorpusError(f"{path}: channels {channels[c]!r} and {name!r} both normalise to {c}")
        else:
            channels[c] = name
    return Header(path, float(raw.info["sfreq"]), int(raw.n_times), channels, tuple(dropped), tuple(unmatched))


def resolve_montage(headers: list[Header], wanted: list[str] | None, corpus: str, table: Path) -> list[str]:
    """``wanted`` (checked against every header), else the registry electrodes every recording
    has, with a warning naming those left out."""
    if wanted:
        for h in headers:
            missing = [n for n in wanted if n not in h.channels]
            if missing:
                raise CorpusError(
                    f"{h.path}: electrodes {missing} of the montage are missing. It has {list(h.channels)}"
                    + _unmatched_hint(h)
                )
        return wanted
    for h in headers:
        if h.unmatched:
            raise CorpusError(
                f"{h.path}: channels {list(h.unmatched)} match no 10-10 electrode name after normalisation"
                + _unmatched_hint(h)
            )
    common = set.intersection(*(set(h.channels) for h in headers))
    if not common:
        raise CorpusError(f"{table}: the recordings share no EEG electrode; set `montage`")
    partial = sorted(set.union(*(set(h.channels) for h in headers)) - common)
    if partial:
        warnings.warn(
            f"{corpus}: electrodes {partial} are not in every recording and are left out; "
            "set `montage` to choose the electrodes explicitly",
            stacklevel=3,
        )
    return [n for n in TEN_TEN if n in common]


def _unmatched_hint(h: Header) -> str:
    hint = f"; names matching no 10-10 electrode: {list(h.unmatched)}" if h.unmatched else ""
    return (
        hint + ". Map them with `channel_aliases` (file name -> 10-10 name), drop non-EEG ones with "
        "`drop_channels`, or choose `montage`"
    )
