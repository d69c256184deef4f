"""Your own recordings: any file MNE reads (EDF, BDF, GDF, FIF, BrainVision, EEGLAB, ...) plus a table.

The table (CSV, or TSV when the name ends in ``.tsv``) has one row per recording or per labelled
segment of a recording::

    file,subject,session,trial,label,start,stop
    sub01/rest.edf,1,1,1,rest,,
    sub01/task.edf,1,1,2,task,0,60

``file`` is relative to the corpus root; ``subject`` (integer) and ``label`` are required;
``session`` defaults to 1, ``trial`` to the row's rank within its subject-session; ``start`` /
``stop`` are seconds into the file (empty: its start / end). Channel names are normalised to the
10-10 registry (:func:`~scmm_lightning.data.channels.canonical`); non-EEG channels are dropped by
MNE channel type and by name (ECG, EOG, ..., ear/mastoid references). Signals are read in
microvolts, optionally resampled (``mne.filter.resample``), and become DE windows exactly as the
raw official corpora do.
"""

from __future__ import annotations

import csv
import math
import warnings
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..channels import REFERENCE_ELECTRODES, TEN_TEN, canonical
from .base import CorpusError, CorpusReader, RawDEConfig, Recording, check_finite, windows_recording

EEG_TYPES = frozenset({"eeg", "seeg", "ecog"})
"""MNE channel types kept; every other type (ecg, eog, emg, stim, misc, ...) is dropped."""
NON_EEG_NAMES = frozenset(
    {"ECG", "EKG", "EOG", "HEOG", "VEOG", "EMG", "STATUS", "TRIGGER", "STI 014", "RESP", "GSR", "PHOTIC", "EVENT"}
    | REFERENCE_ELECTRODES
)
"""Dropped by (canonical) name whatever type the file gives them; EDF stores every channel as EEG."""

RESAMPLE_MARGIN = 2.0  # seconds read beyond a segment's ends before resampling
_TYPE_INFERRING = {".edf", ".bdf", ".gdf"}


@dataclass(frozen=True)
class Segment:
    """One table row: a labelled span of a file."""

    line: int
    file: Path
    subject: int
    session: int
    trial: int
    label: str
    start: float | None
    stop: float | None


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


def _quiet_mne():
    """MNE's per-call ``verbose`` swaps a global log level, which races across threads; hold one
    level around the whole parallel section instead."""
    import mne

    return mne.utils.use_log_level("ERROR")


def _open_raw(path: Path):
    import mne

    kwargs = {"infer_types": True} if path.suffix.lower() in _TYPE_INFERRING else {}
    try:
        return mne.io.read_raw(path, preload=False, verbose="ERROR", **kwargs)
    except FileNotFoundError:
        raise CorpusError(f"{path}: file missing") from None
    except Exception as err:  # MNE raises many types for unknown / corrupt files
        raise CorpusError(f"{path}: MNE cannot read this file ({type(err).__name__}: {err})") from err


def read_table(path: Path, root: Path, label_column: str = "label") -> list[Segment]:
    """Parse and check the recordings table; every problem names the line and the column."""
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh, delimiter=delimiter)
            header = [h.strip() for h in reader.fieldnames or []]
            reader.fieldnames = header
            rows = list(reader)
    except FileNotFoundError:
        raise CorpusError(f"recordings table {path} does not exist") from None
    required = ("file", "subject", label_column)
    missing = [c for c in required if c not in header]
    if missing:
        raise CorpusError(
            f"{path}: columns {missing} missing; found {header}. Required: file, subject, {label_column}; "
            "optional: session, trial, start, stop"
        )
    segments: list[Segment] = []
    problems: list[str] = []
    ranks: dict[tuple[int, int], int] = {}
    for i, row in enumerate(rows):
        line = i + 2  # the header is line 1
        cells = _Cells(row, line, problems)
        file_name = cells.text("file")
        if not file_name:
            problems.append(f"line {line}: empty 'file'")
            continue
        label = cells.text(label_column)
        if not label:
            problems.append(f"line {line}: empty {label_column!r} cell for {file_name}")
        subject = cells.integer("subject", None)
        session = cells.integer("session", 1)
        start, stop = cells.seconds("start"), cells.seconds("stop")
        if start is not None and stop is not None and stop <= start:
            problems.append(f"line {line}: stop {stop} s is not after start {start} s")
        if subject is None or session is None:
            continue
        rank = ranks[(subject, session)] = ranks.get((subject, session), 0) + 1
        trial = cells.integer("trial", rank)
        file_path = Path(file_name) if Path(file_name).is_absolute() else root / file_name
        if not file_path.is_file():
            problems.append(f"line {line}: file {file_path} does not exist")
        segments.append(Segment(line, file_path, subject, session, trial, label, start, stop))
    seen: dict[tuple[int, int, int], int] = {}
    for s in segments:
        key = (s.subject, s.session, s.trial)
        if key in seen:
            problems.append(
                f"line {s.line}: subject {s.subject} session {s.session} trial {s.trial} repeats line {seen[key]}"
            )
        seen.setdefault(key, s.line)
    if not rows:
        problems.append("no rows")
    if problems:
        shown = "\n  ".join(problems[:20]) + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise CorpusError(f"{path}: bad recordings table:\n  {shown}")
    return segments


class RecordingsReader(CorpusReader):
    """A directory of EEG files in any format MNE reads, described by a table.

    Args:
        root: directory the table's ``file`` column is relative to.
        table: the table (CSV / TSV); a relative path is looked up in the working directory, then in ``root``.
        name: corpus name (logs, cache file names).
        label_column: the table column holding the class label.
        class_names: labels in class-index order; default: the table's labels sorted (numerically
            when they are all integers).
        montage: electrodes to keep, in this order; default: those every recording has, in registry order.
        drop_channels: more channel names to drop (besides non-EEG types and ECG/EOG/EMG/A1/A2/...).
        channel_aliases: file name -> registry name for electrodes with non-standard names.
        resample: resample every segment to this rate (Hz) before DE; default: keep each file's rate.
        raw: DE extraction settings.
        workers: files read and transformed in parallel.
    """

    name = "recordings"
    layout = (
        "Expected a directory of EEG files that MNE can read and a table (CSV/TSV) with columns "
        "file, subject, label and optionally session, trial, start, stop (see README, 'Your own recordings')."
    )

    def __init__(
        self,
        root: str | Path,
        table: str | Path,
        name: str = "recordings",
        label_column: str = "label",
        class_names: list[str] | None = None,
        montage: list[str] | None = None,
        drop_channels: list[str] | None = None,
        channel_aliases: Mapping[str, str] | None = None,
        resample: float | None = None,
        raw: RawDEConfig | None = None,
        workers: int = 4,
    ) -> None:
        super().__init__(root)
        table = Path(table).expanduser()
        if not table.is_absolute() and not table.is_file():
            table = self.root / table
        self.table = table
        self.name = name
        self.label_column = label_column
        self.aliases = dict(channel_aliases or {})
        self.drop = frozenset(canonical(n, self.aliases) for n in drop_channels or [])
        self.resample = float(resample) if resample else None
        if self.resample is not None and self.resample <= 0:
            raise CorpusError(f"resample={resample}: give a sampling rate in Hz > 0, or none")
        self.raw = raw or RawDEConfig()
        self.workers = max(1, workers)
        self.segments = read_table(self.table, self.root, label_column)
        self._montage = [canonical(n, self.aliases) for n in montage] if montage else None
        if self._montage:
            unknown = [n for n in self._montage if n not in TEN_TEN]
            if unknown:
                raise CorpusError(f"montage electrodes {unknown} are not 10-10 names (registry: {', '.join(TEN_TEN)})")
        labels = sorted({s.label for s in self.segments})
        if class_names:
            self._class_names = tuple(str(c) for c in class_names)
            unknown = [s for s in self.segments if s.label not in self._class_names]
            if unknown:
                lines = ", ".join(f"line {s.line} ({s.label!r})" for s in unknown[:10])
                raise CorpusError(
                    f"{self.table}: labels not in class_names {list(self._class_names)}: {lines}; "
                    "add them to class_names or fix the table"
                )
        else:
            if all(_is_int(v) for v in labels):
                labels = sorted(labels, key=int)
            self._class_names = tuple(labels)

    # -- header scan ----------------------------------------------------------------------------------
    def files(self) -> list[Path]:
        return list(dict.fromkeys(s.file for s in self.segments))

    def header(self, path: Path) -> Header:
        raw = _open_raw(path)
        channels: dict[str, str] = {}
        dropped, unmatched = [], []
        for name, kind in zip(raw.ch_names, raw.get_channel_types()):
            c = canonical(name, self.aliases)
            if kind not in EEG_TYPES or c in NON_EEG_NAMES or c in self.drop:
                dropped.append(name)
            elif c not in TEN_TEN:
                unmatched.append(name)
            elif c in channels:
                raise CorpusError(f"{path}: channels {channels[c]!r} and {name!r} both normalise to {c}")
            else:
                channels[c] = name
        return Header(path, float(raw.info["sfreq"]), int(raw.n_times), channels, tuple(dropped), tuple(unmatched))

    @cached_property
    def headers(self) -> dict[Path, Header]:
        with _quiet_mne(), ThreadPoolExecutor(self.workers) as pool:
            return dict(zip(self.files(), pool.map(self.header, self.files())))

    @property
    def channel_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(self.montage)

    @property
    def class_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return self._class_names

    @cached_property
    def montage(self) -> list[str]:
        headers = self.headers.values()
        if self._montage:
            wanted = self._montage
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
            raise CorpusError(f"{self.table}: the recordings share no EEG electrode; set `montage`")
        partial = sorted(set.union(*(set(h.channels) for h in headers)) - common)
        if partial:
            warnings.warn(
                f"{self.name}: electrodes {partial} are not in every recording and are left out; "
                "set `montage` to choose the electrodes explicitly",
                stacklevel=2,
            )
        return [n for n in TEN_TEN if n in common]

    # -- CorpusReader ---------------------------------------------------------------------------------
    def source_files(self) -> list[Path]:
        return [self.table, *self.files()]

    def num_recordings(self) -> int:
        return len({(s.subject, s.session) for s in self.segments})

    def params(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label_column": self.label_column,
            "class_names": list(self.class_names),
            "montage": list(self.montage),
            "drop_channels": sorted(self.drop),
            "channel_aliases": self.aliases,
            "resample": self.resample,
            "raw": asdict(self.raw),
        }

    def read_segment(self, segment: Segment, raw: Any = None) -> tuple[np.ndarray, float]:
        """(C, n) microvolts of the segment's montage electrodes and its sampling rate; ``raw``: the
        file already opened (``mne.io.read_raw``, not preloaded)."""
        header = self.headers[segment.file]
        start = segment.start or 0.0
        stop = header.duration if segment.stop is None else segment.stop
        if stop > header.duration + 1.0 / header.sfreq:
            raise CorpusError(
                f"{self.table} line {segment.line}: stop {stop} s is past the end of {segment.file} "
                f"({header.duration:.3f} s)"
            )
        first, last = int(round(start * header.sfreq)), min(int(round(stop * header.sfreq)), header.n_times)
        # resampling is FFT-based: read up to RESAMPLE_MARGIN s either side and cut it off afterwards,
        # so segment edges inside a file carry no wrap-around artefact
        pad = int(RESAMPLE_MARGIN * header.sfreq) if self.resample and self.resample != header.sfreq else 0
        lo, hi = max(0, first - pad), min(header.n_times, last + pad)
        raw = raw if raw is not None else _open_raw(segment.file)
        picks = [header.channels[n] for n in self.montage]
        try:
            data = raw.get_data(picks=picks, start=lo, stop=hi, units="uV")
        except Exception as err:
            raise CorpusError(f"{segment.file}: reading samples {lo}..{hi} failed ({err})") from err
        check_finite(data, f"{segment.file}")
        sfreq = header.sfreq
        if pad:
            import mne

            data = mne.filter.resample(data, up=self.resample, down=sfreq, axis=-1, verbose="ERROR")
            ratio = self.resample / sfreq
            begin = int(round((first - lo) * ratio))
            data = data[:, begin : begin + int(round((last - first) * ratio))]
            sfreq = self.resample
        needed = int(round(self.raw.window_seconds * sfreq))
        if data.shape[-1] < needed:
            raise CorpusError(
                f"{self.table} line {segment.line}: {segment.file} gives {data.shape[-1] / sfreq:.3f} s "
                f"({start}..{stop} s), shorter than one {self.raw.window_seconds} s window"
            )
        return data, sfreq

    def features(self, segments: list[Segment]) -> list[np.ndarray]:
        """DE windows of segments of ONE file, opened once."""
        raw = _open_raw(segments[0].file)
        return [self.raw.extract([data], sfreq)[0] for data, sfreq in (self.read_segment(s, raw) for s in segments)]

    def recordings(self) -> Iterator[Recording]:
        groups: dict[tuple[int, int], list[Segment]] = {}
        for s in self.segments:
            groups.setdefault((s.subject, s.session), []).append(s)
        class_index = {c: i for i, c in enumerate(self.class_names)}
        self.montage  # noqa: B018  # resolve (and check) the montage before any work
        with ThreadPoolExecutor(self.workers) as pool:
            for (subject, session), segs in sorted(groups.items()):
                segs = sorted(segs, key=lambda s: s.trial)
                by_file: dict[Path, list[Segment]] = {}
                for seg in segs:
                    by_file.setdefault(seg.file, []).append(seg)
                with _quiet_mne():
                    features = {
                        seg: f
                        for file_segs, feats in zip(by_file.values(), pool.map(self.features, by_file.values()))
                        for seg, f in zip(file_segs, feats)
                    }
                yield windows_recording(
                    [features[seg] for seg in segs],
                    [class_index[seg.label] for seg in segs],
                    subject,
                    session,
                    ", ".join(str(f) for f in by_file),
                    self.name,
                    trials=[seg.trial for seg in segs],
                )


class _Cells:
    """Typed access to one table row; problems are collected with the row's line number."""

    def __init__(self, row: dict[str, str | None], line: int, problems: list[str]) -> None:
        self.row, self.line, self.problems = row, line, problems

    def text(self, name: str) -> str:
        return (self.row.get(name) or "").strip()

    def integer(self, name: str, default: int | None) -> int | None:
        text = self.text(name)
        if not text:
            if default is None:
                self.problems.append(f"line {self.line}: empty {name!r}")
            return default
        try:
            return int(text)
        except ValueError:
            self.problems.append(f"line {self.line}: {name} {text!r} is not an integer")
            return default

    def seconds(self, name: str) -> float | None:
        text = self.text(name)
        if not text:
            return None
        try:
            value = float(text)
        except ValueError:
            self.problems.append(f"line {self.line}: {name} {text!r} is not a number of seconds")
            return None
        if not math.isfinite(value) or value < 0:
            self.problems.append(f"line {self.line}: {name} {text!r} must be a finite number of seconds >= 0")
            return None
        return value


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _unmatched_hint(h: Header) -> str:
    hint = f"; names matching no 10-10 electrode: {list(h.unmatched)}" if h.unmatched else ""
    return (
        hint + ". Map them with `channel_aliases` (file name -> 10-10 name), drop non-EEG ones with "
        "`drop_channels`, or choose `montage`"
    )
