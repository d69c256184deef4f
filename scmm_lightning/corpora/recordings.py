"""Your own recordings: any file MNE reads (EDF, BDF, GDF, FIF, BrainVision, EEGLAB, ...) plus a table.

The table (CSV, or TSV when the name ends in ``.tsv``) has one row per recording or per labelled
segment of a recording::

    file,subject,session,trial,label,start,stop
    sub01/rest.edf,1,1,1,rest,,
    sub01/task.edf,1,1,2,task,0,60

``file`` is relative to the corpus root; ``subject`` (integer) and ``label`` are required;
``session`` defaults to 1, ``trial`` to the row's rank within its subject-session; ``start`` /
``stop`` are seconds into the file (empty: its start / end). Channel names are normalised to the
10-10 registry (:func:`~scmm_lightning.corpora.channels.canonical`); non-EEG channels are dropped by
MNE channel type and by name (ECG, EOG, ..., ear/mastoid references). Signals are read in
microvolts, optionally resampled (``mne.filter.resample``), and become DE windows exactly as the
raw official corpora do.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .base import CorpusError, CorpusInfo, CorpusReader, SessionWindows, check_finite, session_windows
from .channels import TEN_TEN, canonical
from .de import RawDEConfig
from .recordings_montage import Header, open_raw, quiet_mne, read_header, resolve_montage
from .recordings_table import Segment, is_integer, read_table

RESAMPLE_MARGIN = 2.0  # seconds read beyond a segment's ends before resampling


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

    layout = (
        "Expected a directory of EEG files that MNE can read and a table (CSV/TSV) with columns "
        "file, subject, label and optionally session, trial, start, stop (see README, 'Your own recordings')."
    )
    unknown_label_fix = "fix the table"

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
        segments = read_table(self.table, self.root, label_column)
        self._configure(
            segments, name, label_column, class_names, montage, drop_channels, channel_aliases, resample, raw, workers
        )

    def _configure(
        self,
        segments: list[Segment],
        name: str,
        label_column: str,
        class_names: list[str] | None,
        montage: list[str] | None,
        drop_channels: list[str] | None,
        channel_aliases: Mapping[str, str] | None,
        resample: float | None,
        raw: RawDEConfig | None,
        workers: int,
    ) -> None:
        """Everything but where the labelled segments come from (this table, or BIDS events files)."""
        self.corpus_name = name
        self.label_column = label_column
        self.aliases = dict(channel_aliases or {})
        self.drop = frozenset(canonical(n, self.aliases) for n in drop_channels or [])
        self.resample = float(resample) if resample else None
        if self.resample is not None and self.resample <= 0:
            raise CorpusError(f"resample={resample}: give a sampling rate in Hz > 0, or none")
        self.raw = raw or RawDEConfig()
        self.workers = max(1, workers)
        self.segments = segments
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
                lines = ", ".join(f"{s.where} ({s.label!r})" for s in unknown[:10])
                raise CorpusError(
                    f"{self.table}: labels not in class_names {list(self._class_names)}: {lines}; "
                    f"add them to class_names or {self.unknown_label_fix}"
                )
        else:
            if all(is_integer(v) for v in labels):
                labels = sorted(labels, key=int)
            self._class_names = tuple(labels)

    # -- electrodes ---------------------------------------------------------------------------------
    def files(self) -> list[Path]:
        return list(dict.fromkeys(s.file for s in self.segments))

    @cached_property
    def headers(self) -> dict[Path, Header]:
        with quiet_mne(), ThreadPoolExecutor(self.workers) as pool:
            return dict(
                zip(self.files(), pool.map(lambda f: read_header(f, self.aliases, self.drop_for(f)), self.files()))
            )

    def drop_for(self, file: Path) -> frozenset[str]:
        """Channel names (canonical) dropped from ``file`` besides the non-EEG types."""
        return self.drop

    @cached_property
    def montage(self) -> list[str]:
        return resolve_montage(list(self.headers.values()), self._montage, self.corpus_name, self.table)

    @property
    def info(self) -> CorpusInfo:
        return CorpusInfo(self.corpus_name, self.corpus_name, tuple(self.montage), self._class_names, "RECORDINGS")

    # -- CorpusReader ---------------------------------------------------------------------------------
    def source_files(self) -> list[Path]:
        return [self.table, *self.files()]

    def num_sessions(self) -> int:
        return len({(s.subject, s.session) for s in self.segments})

    def params(self) -> dict[str, Any]:
        return {
            "name": self.corpus_name,
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
                f"{segment.source or self.table} line {segment.line}: stop {stop} s is past the end of {segment.file} "
                f"({header.duration:.3f} s)"
            )
        first, last = int(round(start * header.sfreq)), min(int(round(stop * header.sfreq)), header.n_times)
        # resampling is FFT-based: read up to RESAMPLE_MARGIN s either side and cut it off afterwards,
        # so segment edges inside a file carry no wrap-around artefact
        pad = int(RESAMPLE_MARGIN * header.sfreq) if self.resample and self.resample != header.sfreq else 0
        lo, hi = max(0, first - pad), min(header.n_times, last + pad)
        raw = raw if raw is not None else open_raw(segment.file)
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
                f"{segment.source or self.table} line {segment.line}: {segment.file} gives {data.shape[-1] / sfreq:.3f} s "
                f"({start}..{stop} s), shorter than one {self.raw.window_seconds} s window"
            )
        return data, sfreq

    def features(self, segments: list[Segment]) -> list[np.ndarray]:
        """DE windows of segments of ONE file, opened once."""
        raw = open_raw(segments[0].file)
        return [self.raw.extract([data], sfreq)[0] for data, sfreq in (self.read_segment(s, raw) for s in segments)]

    def sessions(self) -> Iterator[SessionWindows]:
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
                with quiet_mne():
                    features = {
                        seg: f
                        for file_segs, feats in zip(by_file.values(), pool.map(self.features, by_file.values()))
                        for seg, f in zip(file_segs, feats)
                    }
                yield session_windows(
                    [features[seg] for seg in segs],
                    [class_index[seg.label] for seg in segs],
                    subject,
                    session,
                    ", ".join(str(f) for f in by_file),
                    self.name,
                    trials=[seg.trial for seg in segs],
                )
