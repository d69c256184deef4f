"""``python -m scmm_lightning prepare --corpus NAME --root DIR [reader options]``: build a corpus's
feature cache and print its summary.

The reader options are not restated here: they are read from the reader class's own signature and
docstring (the same definitions the datamodules pass on), so ``prepare --corpus deap --help``
lists exactly what :class:`~scmm_lightning.corpora.DeapReader` accepts. Imports no torch.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from jsonargparse import ArgumentParser

from ..corpora import READERS, CorpusError, build_cache, cache_path, default_cache_dir, load_cache
from .options import unknown_option_hint


def parser(corpus: str | None) -> ArgumentParser:
    p = ArgumentParser(
        prog="python -m scmm_lightning prepare",
        description="Read a corpus from its official layout (or your recordings and their table), extract DE "
        "features and cache them (HDF5). `--corpus NAME --help` lists that reader's options.",
        exit_on_error=False,
        allow_abbrev=False,  # options written in full (cli/options.py says why)
    )
    p.add_argument("--corpus", required=True, choices=sorted(READERS), help="which reader")
    p.add_argument(
        "--cache_dir", default=None, help=f"cache directory (default: $SCMM_CACHE_DIR or {default_cache_dir()})"
    )
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    if corpus in READERS:
        p.add_class_arguments(READERS[corpus], nested_key="reader", as_group=True, fail_untyped=False)
    return p


def reader_flags(argv: list[str]) -> list[str]:
    """``--root X`` -> ``--reader.root X``: reader options are given without their group prefix."""
    own = {"--corpus", "--cache_dir", "--no_progress", "--help", "-h"}
    out = []
    for a in argv:
        name = a.split("=", 1)[0]
        out.append(
            "--reader." + a[2:] if a.startswith("--") and name not in own and not a.startswith("--reader.") else a
        )
    return out


def main(argv: Sequence[str]) -> int:
    argv = list(argv)
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--corpus")
    corpus = pre.parse_known_args(argv)[0].corpus
    p = parser(corpus)
    try:
        args = p.parse_args(reader_flags(argv))
        reader = p.instantiate_classes(args).reader
        before = cache_path(reader, args.cache_dir)
        stamp = lambda p: (p.stat().st_ino, p.stat().st_mtime_ns)  # noqa: E731
        existed = stamp(before) if before.exists() else None
        t0 = time.perf_counter()
        path = build_cache(reader, args.cache_dir, progress=not args.no_progress)
        built = time.perf_counter() - t0
        existed = existed == stamp(path)  # a damaged cache is rebuilt (a new file)
        t0 = time.perf_counter()
        table = load_cache(path)
        loaded = time.perf_counter() - t0
    except (CorpusError, ValueError, FileNotFoundError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # jsonargparse's parse errors
        if type(err).__name__ != "ArgumentError":
            raise
        # reader options are written without their group prefix (reader_flags): name them that way
        as_written = str(err).replace("--reader.", "--")
        options = [o.replace("--reader.", "--") for o in p._option_string_actions]
        print(f"error: {unknown_option_hint(as_written, options)}", file=sys.stderr)
        return 2
    print(table.summary())
    print(f"channels:  {' '.join(table.channel_names)}")
    if getattr(reader, "subject_ids", None):  # BIDS: which subject label became which id
        print(f"subject ids: {' '.join(f'sub-{k}={v}' for k, v in reader.subject_ids.items())}")
    print(f"cache:     {path} ({'reused' if existed else f'built in {built:.1f} s'}; loads in {loaded:.2f} s)")
    return 0
