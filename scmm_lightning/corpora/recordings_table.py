"""The recordings table: one row per recording or per labelled segment of one, parsed and checked.

Columns ``file`` (relative to the corpus root; a path resolving outside the root is refused, since a
shared table describes one folder), ``subject`` (integer) and the label column are
required; ``session`` defaults to 1, ``trial`` to the row's rank within its subject-session,
``start`` / ``stop`` (seconds) to the whole file. Every problem names the table line and the column.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

from .base import CorpusError


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
    source: Path | None = None  # the file the row is in, when rows come from several (BIDS events.tsv)

    @property
    def where(self) -> str:
        """``line N``, or ``FILE line N`` for a row of one of several tables."""
        return f"{self.source} line {self.line}" if self.source else f"line {self.line}"


def read_table(path: Path, root: Path, label_column: str = "label") -> list[Segment]:
    """Parse and check the recordings table; every problem names the line and the column."""
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CorpusError(f"recordings table {path} does not exist") from None
    except IsADirectoryError:
        raise CorpusError(f"recordings table {path} is a directory; give the table's file (.csv or .tsv)") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise CorpusError(
            f"{path}: line {line}: byte 0x{raw[err.start]:02x} is not UTF-8; save the table as UTF-8 "
            "(e.g. 'iconv -f latin1 -t utf-8')"
        ) from None
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [h.strip() for h in reader.fieldnames or []]
    reader.fieldnames = header
    rows = list(reader)
    required = ("file", "subject", label_column)
    missing = [c for c in required if c not in header]
    if missing:
        raise CorpusError(
            f"{path}: columns {missing} missing; found {header}. Required: file, subject, {label_column}; "
            "optional: session, trial, start, stop"
        )
    segments: list[Segment] = []
    problems: list[str] = []
    root_resolved = root.resolve()
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
        file_path = (root / file_name).resolve()  # an absolute file_name stays itself
        if not file_path.is_relative_to(root_resolved):
            problems.append(
                f"line {line}: file {file_name} resolves to {file_path}, outside the root {root}; move the recording "
                "under the root (a shared table must not read outside the folder it describes)"
            )
            continue
        if file_path.is_dir():
            problems.append(f"line {line}: file {file_path} is a directory, not a recording")
        elif not file_path.is_file():
            problems.append(f"line {line}: file {file_path} does not exist")
        segments.append(Segment(line, file_path, subject, session, trial, label, start, stop))
    problems += overlapping_spans(segments)
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


def overlapping_spans(segments: list[Segment]) -> list[str]:
    """Rows whose spans of one file (paths already resolved: ``a/../b/x.fif`` is ``b/x.fif``)
    overlap, a whole-file row (no start/stop) overlapping everything in its file: the same windows
    would land in two trials, possibly with two labels and on both sides of a split."""
    problems = []
    by_file: dict[Path, list[Segment]] = {}
    for s in segments:
        by_file.setdefault(s.file, []).append(s)
    for file, rows in by_file.items():
        spans = sorted(rows, key=lambda s: (s.start or 0.0, s.line))
        for i, a in enumerate(spans):
            a_stop = math.inf if a.stop is None else a.stop
            for b in spans[i + 1 :]:
                if (b.start or 0.0) >= a_stop:
                    break
                first, second = sorted((a, b), key=lambda s: s.line)
                what = "repeats" if (a.start, a.stop) == (b.start, b.stop) else "overlaps"
                problems.append(
                    f"{second.where}: {file} from {_at(second.start, 'its start')} to {_at(second.stop, 'its end')} "
                    f"({second.label}) {what} {first.where} ({_at(first.start, 'its start')} to "
                    f"{_at(first.stop, 'its end')}, {first.label}): the same windows would be in two trials; make the "
                    "spans disjoint or remove one line"
                )
    return problems


def _at(seconds: float | None, default: str) -> str:
    return default if seconds is None else f"{seconds:g} s"


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


def is_integer(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True
