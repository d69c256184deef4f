"""EEG datasets in BIDS (the layout OpenNeuro publishes), read through mne-bids.

Subjects, sessions, tasks and runs come from the BIDS entities (``sub-01/ses-02/eeg/
sub-01_ses-02_task-music_run-1_eeg.edf``); the labelled segments from each recording's
``*_events.tsv`` (``onset`` and ``duration`` in seconds from the first sample, and the label column,
``trial_type`` by default); channel types from ``*_channels.tsv`` (non-EEG channels are dropped, as
are the names the recordings reader drops). Everything after that -- channel names normalised to
the 10-10 registry, reading in microvolts, resampling, DE windows, the cache -- is the recordings
reader's (:class:`~scmm_lightning.corpora.RecordingsReader`), so the same files give the same windows
whether they are described by a recordings table or by BIDS.

Subject ids: a BIDS label that is an integer (``01``) is that integer; otherwise labels are numbered
1, 2, ... in sorted order (printed by ``prepare``, stored in the cache parameters). Sessions alike
(no session entity: session 1). Trials are numbered within each subject-session in the order of the
recordings' file names (task, run) and then of onset.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .base import CorpusError, CorpusReader
from .channels import canonical
from .de import RawDEConfig
from .recordings import RecordingsReader
from .recordings_table import Segment, is_integer, overlapping_spans

EEG_EXTENSIONS = (".edf", ".bdf", ".vhdr", ".set")
"""The EEG data formats BIDS allows (BrainVision by its header, EEGLAB by its .set)."""
EEG_CHANNEL_TYPES = frozenset({"EEG"})


def entity_ids(labels: list[str]) -> dict[str, int]:
    """BIDS labels -> integer ids: the integer itself when every label is one, else 1.. in sorted order."""
    ordered = sorted(set(labels))
    if all(is_integer(v) for v in ordered) and len({int(v) for v in ordered}) == len(ordered):
        return {v: int(v) for v in ordered}
    return {v: i for i, v in enumerate(ordered, start=1)}


class BidsReader(RecordingsReader):
    """An EEG BIDS dataset: recordings found and named by mne-bids, segments from their events files.

    Args:
        root: the BIDS root (holds ``dataset_description.json`` and ``sub-*``).
        task: read only this task's recordings (default: every task).
        label_column: the ``events.tsv`` column holding the class label.
        class_names: labels in class-index order; default: every label found, sorted (numerically
            when they are all integers). Events whose label is not listed are an error unless listed
            in ``ignore_labels``.
        ignore_labels: labels of events that are not segments to classify (e.g. ``boundary``,
            ``response``, ``n/a``): skipped.
        subjects: BIDS subject labels to read (default: every ``sub-*`` folder; each must have EEG).
        name: corpus name (logs, cache file names); default: the root folder's name.
        montage: electrodes to keep, in this order; default: those every recording has.
        drop_channels: more channel names to drop.
        channel_aliases: file channel name -> 10-10 name.
        resample: resample every segment to this rate (Hz) before DE; default: each file's own rate.
        raw: DE extraction settings.
        workers: files read and transformed in parallel.
    """

    layout = (
        "Expected an EEG BIDS dataset: dataset_description.json, sub-<label>/[ses-<label>/]eeg/"
        "sub-<label>_[ses-<label>_]task-<label>_[run-<index>_]eeg.<edf|bdf|vhdr|set>, each with its _events.tsv "
        "(onset, duration, and the label column) and _channels.tsv (see README, 'BIDS datasets')."
    )
    unknown_label_fix = "skip those events with ignore_labels"

    def __init__(
        self,
        root: str | Path,
        task: str | None = None,
        label_column: str = "trial_type",
        class_names: list[str] | None = None,
        ignore_labels: list[str] | None = None,
        subjects: list[str] | None = None,
        name: str | None = None,
        montage: list[str] | None = None,
        drop_channels: list[str] | None = None,
        channel_aliases: Mapping[str, str] | None = None,
        resample: float | None = None,
        raw: RawDEConfig | None = None,
        workers: int = 4,
    ) -> None:
        CorpusReader.__init__(self, root)
        self.table = self.root  # messages about the whole dataset name its root
        self.task = task
        self.ignore_labels = tuple(sorted(ignore_labels or ()))
        self.bids_subjects = [str(s).removeprefix("sub-") for s in subjects] if subjects else None
        self.recordings = self.find_recordings()
        self.subject_ids = entity_ids([r.subject for r in self.recordings])
        self.session_ids = entity_ids([r.session or "" for r in self.recordings])
        segments = self.read_events(label_column, class_names)
        self._configure(
            segments, name or self.root.resolve().name, label_column, class_names, montage, drop_channels,
            channel_aliases, resample, raw, workers,
        )  # fmt: skip

    # -- the dataset ----------------------------------------------------------------------------------
    def find_recordings(self) -> list[Any]:
        """Every EEG recording (``BIDSPath``) of the selected subjects and task; a subject folder without
        one is an error naming it."""
        from mne_bids import find_matching_paths, get_entity_vals

        if not (self.root / "dataset_description.json").is_file():
            raise CorpusError(f"{self.root}: no dataset_description.json, so not a BIDS root.\n{self.layout}")
        # subject folders too: mne-bids finds entities in file names, and an empty sub-XX/ has none
        folders = {p.name.removeprefix("sub-") for p in self.root.glob("sub-*") if p.is_dir()}
        all_subjects = sorted(set(get_entity_vals(self.root, "subject")) | folders)
        wanted = self.bids_subjects or all_subjects
        unknown = [s for s in wanted if s not in all_subjects]
        if unknown:
            raise CorpusError(
                f"{self.root}: subjects {unknown} (subjects) are not in the dataset, which has {all_subjects}"
            )
        found = find_matching_paths(
            self.root,
            subjects=wanted,
            tasks=self.task,
            datatypes="eeg",
            suffixes="eeg",
            extensions=list(EEG_EXTENSIONS),
        )
        found = sorted(found, key=lambda p: str(p.fpath))
        with_eeg = {p.subject for p in found}
        lacking = [s for s in wanted if s not in with_eeg]
        if lacking:
            what = f" for task {self.task!r}" if self.task else ""
            raise CorpusError(
                f"{self.root}: subjects {['sub-' + s for s in lacking]} have no EEG recording{what} "
                f"(sub-<label>/[ses-<label>/]eeg/*_eeg{{{','.join(EEG_EXTENSIONS)}}}); add it, or read the others "
                f"with subjects: {[s for s in wanted if s in with_eeg]}"
            )
        return found

    def read_events(self, label_column: str, class_names: list[str] | None) -> list[Segment]:
        """Labelled segments of every recording from its ``events.tsv``; problems name the file and line."""
        segments: list[Segment] = []
        problems: list[str] = []
        ranks: dict[tuple[int, int], int] = {}
        for path in self.recordings:
            events = path.copy().update(suffix="events", extension=".tsv").fpath
            subject = self.subject_ids[path.subject]
            session = self.session_ids[path.session or ""]
            rows = self._events_rows(Path(events), Path(path.fpath), label_column, class_names, problems)
            for line, onset, duration, label in rows:
                rank = ranks[(subject, session)] = ranks.get((subject, session), 0) + 1
                segments.append(
                    Segment(
                        line, Path(path.fpath), subject, session, rank, label, onset, onset + duration, Path(events)
                    )
                )
        problems += overlapping_spans(segments)
        if not segments and not problems:
            problems.append(
                f"no labelled events in column {label_column!r} of any events.tsv"
                + (f" (every label is in ignore_labels {list(self.ignore_labels)})" if self.ignore_labels else "")
            )
        if len(problems) == 1:
            raise CorpusError(problems[0])
        if problems:
            shown = "\n  ".join(problems[:20]) + (
                f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
            )
            raise CorpusError(f"{self.root}: bad BIDS events:\n  {shown}")
        return segments

    def _events_rows(
        self, events: Path, recording: Path, label_column: str, class_names: list[str] | None, problems: list[str]
    ) -> list[tuple[int, float, float, str]]:
        """(line, onset, duration, label) of the events to read; problems name the file and line."""
        if not events.is_file():
            problems.append(
                f"{recording.name}: no events file {events.name} beside it; its events (onset, duration, "
                f"{label_column}) are the labelled segments"
            )
            return []
        try:
            text = events.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as err:
            problems.append(f"{events}: not UTF-8 ({err})")
            return []
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t")
        header = [h.strip() for h in reader.fieldnames or []]
        reader.fieldnames = header
        missing = [c for c in ("onset", "duration", label_column) if c not in header]
        if missing:
            problems.append(f"{events}: columns {missing} missing; found {header}")
            return []
        out = []
        for i, row in enumerate(reader):
            line = i + 2
            label = (row.get(label_column) or "").strip()
            if label in self.ignore_labels:
                continue
            if class_names and label not in class_names:
                problems.append(
                    f"{events} line {line}: label {label!r} is not in class_names {list(class_names)}; add it there "
                    "or skip such events with ignore_labels"
                )
                continue
            try:
                onset, duration = float(row["onset"]), float(row["duration"])
            except (TypeError, ValueError):
                problems.append(
                    f"{events} line {line}: onset {row.get('onset')!r} / duration {row.get('duration')!r} are not "
                    f"seconds; a segment needs both (or list its label {label!r} in ignore_labels)"
                )
                continue
            if not (math.isfinite(onset) and math.isfinite(duration)) or onset < 0 or duration <= 0:
                problems.append(
                    f"{events} line {line}: onset {onset} s, duration {duration} s: a segment needs onset >= 0 and "
                    f"duration > 0 (or list its label {label!r} in ignore_labels)"
                )
                continue
            if not label or label == "n/a":
                problems.append(f"{events} line {line}: no {label_column!r} label (or list 'n/a' in ignore_labels)")
                continue
            out.append((line, onset, duration, label))
        return out

    @staticmethod
    def channels_file(file: Path) -> Path:
        """``sub-01_task-x_eeg.edf`` -> ``sub-01_task-x_channels.tsv``."""
        return Path(str(file)[: -len("_eeg" + file.suffix)] + "_channels.tsv")

    def drop_for(self, file: Path) -> frozenset[str]:
        """Besides the reader's drops: the channels ``channels.tsv`` types as anything but EEG."""
        channels = self.channels_file(file)
        if not channels.is_file():
            return self.drop
        rows = csv.DictReader(io.StringIO(channels.read_text(encoding="utf-8-sig"), newline=""), delimiter="\t")
        other = {
            canonical((r.get("name") or "").strip(), self.aliases)
            for r in rows
            if (r.get("type") or "").strip().upper() not in EEG_CHANNEL_TYPES
        }
        return self.drop | frozenset(other)

    # -- CorpusReader ---------------------------------------------------------------------------------
    def source_files(self) -> list[Path]:
        events = sorted({s.source for s in self.segments if s.source is not None})
        channels = [c for c in map(self.channels_file, self.files()) if c.is_file()]
        return [*events, *channels, *self.files()]

    def params(self) -> dict[str, Any]:
        out = super().params()
        out.update(
            task=self.task,
            ignore_labels=list(self.ignore_labels),
            subjects={f"sub-{k}": v for k, v in self.subject_ids.items()},
            sessions={f"ses-{k}" if k else "(none)": v for k, v in self.session_ids.items()},
        )
        return out
