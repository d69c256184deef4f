"""``python -m scmm_lightning prepare``: build a corpus's feature cache and print its summary."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from .data.cache import build_cache, cache_path, default_cache_dir, load_cache
from .data.corpora import CorpusError, DeapReader, RawDEConfig, RecordingsReader, SeedIVReader, SeedReader


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m scmm_lightning prepare",
        description="Read a corpus from its official layout, extract DE features and cache them (HDF5).",
    )
    p.add_argument("--corpus", required=True, choices=["seed", "seed_iv", "deap", "recordings"])
    p.add_argument("--root", required=True, help="corpus root directory (official layout; recordings: the files)")
    p.add_argument(
        "--cache_dir", default=None, help=f"cache directory (default: $SCMM_CACHE_DIR or {default_cache_dir()})"
    )
    p.add_argument(
        "--source",
        default="features",
        choices=["features", "raw"],
        help="SEED/SEED-IV: precomputed features or raw -> DE",
    )
    p.add_argument(
        "--feature_key", default="de_LDS", help="SEED/SEED-IV feature key family (de_LDS, de_movingAve, ...)"
    )
    p.add_argument("--window_seconds", type=float, default=1.0, help="raw -> DE: window length")
    p.add_argument(
        "--smoothing",
        default="none",
        choices=["none", "moving_average", "lds"],
        help="raw -> DE: smoothing over windows",
    )
    p.add_argument(
        "--label_dimension", default="valence", choices=["valence", "arousal", "dominance", "liking"], help="DEAP"
    )
    p.add_argument("--threshold", type=float, default=5.0, help="DEAP: rating > threshold is high")
    p.add_argument("--baseline", default="subtract", choices=["none", "subtract"], help="DEAP: baseline DE treatment")
    own = p.add_argument_group("recordings (your own EEG files, any format MNE reads)")
    own.add_argument("--table", help="CSV/TSV: file, subject, label [, session, trial, start, stop]")
    own.add_argument("--name", default="recordings", help="corpus name")
    own.add_argument("--label_column", default="label", help="table column holding the label")
    own.add_argument("--class_names", nargs="+", help="labels in class-index order (default: sorted)")
    own.add_argument("--montage", nargs="+", help="electrodes to keep, in order (default: those in every file)")
    own.add_argument("--drop_channels", nargs="+", help="more non-EEG channel names to drop")
    own.add_argument(
        "--channel_alias", nargs="+", default=[], metavar="NAME=ELECTRODE", help="e.g. 'LE1=F7': file name -> 10-10"
    )
    own.add_argument("--resample", type=float, help="resample to this rate (Hz) before DE")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    return p


def aliases(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, electrode = pair.partition("=")
        if not sep or not name.strip() or not electrode.strip():
            raise CorpusError(f"--channel_alias {pair!r}: write NAME=ELECTRODE, e.g. 'LE1=F7'")
        out[name.strip()] = electrode.strip()
    return out


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))
    raw = RawDEConfig(window_seconds=args.window_seconds, smoothing=args.smoothing)
    try:
        if args.corpus == "recordings":
            if not args.table:
                raise CorpusError("--corpus recordings needs --table (the recordings table, CSV or TSV)")
            reader = RecordingsReader(
                args.root,
                args.table,
                args.name,
                args.label_column,
                args.class_names,
                args.montage,
                args.drop_channels,
                aliases(args.channel_alias),
                args.resample,
                raw,
            )
        elif args.corpus == "deap":
            reader = DeapReader(args.root, args.label_dimension, args.threshold, args.baseline, raw)
        else:
            cls = SeedReader if args.corpus == "seed" else SeedIVReader
            reader = cls(args.root, args.source, args.feature_key, raw)
        existed = cache_path(reader, args.cache_dir).exists()
        t0 = time.perf_counter()
        path = build_cache(reader, args.cache_dir, progress=not args.no_progress)
        built = time.perf_counter() - t0
        t0 = time.perf_counter()
        table = load_cache(path)
        loaded = time.perf_counter() - t0
    except (CorpusError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(table.summary())
    print(f"channels:  {' '.join(table.channel_names)}")
    print(f"cache:     {path} ({'reused' if existed else f'built in {built:.1f} s'}; loads in {loaded:.2f} s)")
    return 0
