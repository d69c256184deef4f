"""HDF5 cache of extracted window features + metadata, keyed by sources, parameters and version.

A cache entry is ``{cache_dir}/{corpus}-{key}.h5`` where ``key`` hashes every source file's
relative name, size, mtime and ctime, the extraction parameters and the package version: any change
gives a new entry, never a stale read. The ctime (nanoseconds) is what catches a file rewritten with
its size kept and its mtime restored (``os.utime`` cannot set it); it costs one ``stat`` per file,
nothing like hashing 3 GB of DEAP. A copied or moved corpus therefore gets a new key and is read
once more. Entries are written to a temporary file and renamed into place, so a crash leaves no
half-written cache; the temporary files of killed runs are removed by the next build.

Every dataset carries HDF5's Fletcher-32 checksum per chunk, so a flipped bit on disk is a read error,
not a feature of 2.4e-38 or a label of 5 in a 3-class corpus; labels are also checked against the
class list. A cache that fails either check is rebuilt by ``build_cache`` (with a warning naming it)
and refused by ``load_cache`` (naming it and the fix).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .. import __version__
from .base import CorpusError, CorpusReader

METADATA = ("subject", "session", "trial", "window", "label")
CACHE_FORMAT = 2  # 2: Fletcher-32 checksums on every dataset (format 1 caches get a new key, never reused)


def default_cache_dir() -> Path:
    return Path(os.environ.get("SCMM_CACHE_DIR") or Path.home() / ".cache" / "scmm_lightning")


def cache_key(reader: CorpusReader) -> str:
    files = []
    for path in sorted(reader.source_files()):
        try:
            st = path.stat()
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: file missing (listed by the {reader.name} reader)") from None
        # relative names keep a moved corpus's key; a file outside the root (a table) keeps its full path
        name = str(path.relative_to(reader.root)) if path.is_relative_to(reader.root) else str(path.resolve())
        files.append([name, st.st_size, st.st_mtime_ns, st.st_ctime_ns])
    payload = {
        "corpus": reader.name, "files": files, "params": reader.params(), "version": __version__,
        "format": CACHE_FORMAT,
    }  # fmt: skip
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]


def cache_path(reader: CorpusReader, cache_dir: str | Path | None = None) -> Path:
    return Path(cache_dir or default_cache_dir()).expanduser() / f"{reader.name}-{cache_key(reader)}.h5"


@dataclass
class CorpusTable:
    """A corpus in memory: features (N, C, F) float32 and metadata arrays of length N."""

    features: np.ndarray
    metadata: dict[str, np.ndarray]
    channel_names: tuple[str, ...]
    class_names: tuple[str, ...]
    corpus: str
    params: dict[str, Any]

    def summary(self) -> str:
        m = self.metadata
        trials = len({(s, e, t) for s, e, t in zip(m["subject"], m["session"], m["trial"])})
        counts = np.bincount(m["label"], minlength=len(self.class_names))
        lines = [
            f"corpus:    {self.corpus}",
            f"subjects:  {len(np.unique(m['subject']))}",
            f"sessions:  {len({(s, e) for s, e in zip(m['subject'], m['session'])})} subject-sessions "
            f"({len(np.unique(m['session']))} distinct)",
            f"trials:    {trials}",
            f"windows:   {len(self.features)}",
            f"features:  {tuple(self.features.shape[1:])} (channels, bands)",
            "labels:    " + ", ".join(f"{n}={int(c)}" for n, c in zip(self.class_names, counts)),
        ]
        return "\n".join(lines)


def _remove_orphans(target: Path) -> None:
    """Temporary files of builds whose process is gone (killed): ``.{target}.{pid}.tmp``."""
    for tmp in target.parent.glob(f".{target.name}.*.tmp"):
        try:
            pid = int(tmp.name[len(target.name) + 2 : -4])
            os.kill(pid, 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except (ValueError, PermissionError):
            continue


def build_cache(reader: CorpusReader, cache_dir: str | Path | None = None, progress: bool = True) -> Path:
    """Extract every subject-session of ``reader`` into the cache (streamed) unless already there."""
    target = cache_path(reader, cache_dir)
    if target.exists():
        try:
            load_cache(target)
            return target
        except ValueError as err:
            warnings.warn(f"{err.args[0].split(';')[0]}; rebuilding it", stacklevel=2)
            target.unlink(missing_ok=True)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_orphans(target)
        tmp = target.parent / f".{target.name}.{os.getpid()}.tmp"
        tmp.touch()
    except OSError as err:  # a file where the directory should be, no permission, read-only disk
        raise CorpusError(
            f"cannot write the feature cache in {target.parent} ({type(err).__name__}: {err.strerror or err}); "
            "choose a writable directory with --cache_dir / data cache_dir or SCMM_CACHE_DIR"
        ) from None
    sessions = reader.sessions()
    try:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=reader.num_sessions(), desc=f"building {reader.name} cache", unit="session", disable=not progress
        )
        # The HDF5 file is built in memory and written out with plain file I/O: a full disk then
        # raises a clean OSError, whereas HDF5 failing a write of its own left a dangling file handle
        # that crashed the interpreter at exit (seen: exit 139 after the message on a 300 kB tmpfs).
        image = io.BytesIO()
        with h5py.File(image, "w") as h5:
            feats = None
            meta = {}
            n = 0
            for rec in sessions:
                w = len(rec.features)
                if feats is None:
                    c, f = rec.features.shape[1:]
                    feats = h5.create_dataset(
                        "features", (0, c, f), maxshape=(None, c, f), dtype="f4", chunks=(min(4096, max(w, 1)), c, f),
                        fletcher32=True,
                    )  # fmt: skip
                    meta = {
                        k: h5.create_dataset(k, (0,), maxshape=(None,), dtype="i8", chunks=(4096,), fletcher32=True)
                        for k in METADATA
                    }
                if rec.features.shape[1:] != feats.shape[1:]:
                    raise ValueError(
                        f"{rec.source}: feature shape {rec.features.shape[1:]} differs from "
                        f"earlier files' {feats.shape[1:]}"
                    )
                feats.resize(n + w, axis=0)
                feats[n:] = rec.features
                values = {
                    "subject": np.full(w, rec.subject),
                    "session": np.full(w, rec.session),
                    "trial": rec.trial,
                    "window": rec.window,
                    "label": rec.label,
                }
                for k in METADATA:
                    meta[k].resize(n + w, axis=0)
                    meta[k][n:] = values[k]
                n += w
                bar.update(1)
            if feats is None:
                raise ValueError(f"{reader.root}: the {reader.name} reader found no subject-sessions")
            h5.attrs["corpus"] = reader.name
            h5.attrs["channel_names"] = json.dumps(list(reader.channel_names))
            h5.attrs["class_names"] = json.dumps(list(reader.class_names))
            h5.attrs["params"] = json.dumps(reader.params(), default=str)
            h5.attrs["version"] = __version__
        bar.close()
        with open(tmp, "wb") as fh:
            fh.write(image.getbuffer())
        tmp.chmod(0o666 & ~current_umask())  # readable by the lab like any file the user writes
        os.replace(tmp, target)
    except OSError as err:  # disk full, quota, permissions: nothing half-written stays
        tmp.unlink(missing_ok=True)
        if isinstance(err, FileNotFoundError) and not str(err.filename or "").startswith(str(target.parent)):
            raise
        raise CorpusError(
            f"writing the feature cache {target} failed ({err.strerror or err}); free space there or choose "
            "another directory with --cache_dir / data cache_dir or SCMM_CACHE_DIR"
        ) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def current_umask() -> int:
    """The process's umask (read by setting and restoring it: the only way the OS offers). Files this
    package writes get 0666 (folders 0777) minus it, like any file the user creates; mkstemp's 0600
    would hide caches, results and exports from the rest of a lab."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load_cache(path: str | Path) -> CorpusTable:
    """The cache at ``path``; a ValueError naming it when it cannot be read, fails a checksum or
    holds a label outside its class list (a damaged file)."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as h5:
            table = CorpusTable(
                features=h5["features"][()],
                metadata={k: h5[k][()] for k in METADATA},
                channel_names=tuple(json.loads(h5.attrs["channel_names"])),
                class_names=tuple(json.loads(h5.attrs["class_names"])),
                corpus=str(h5.attrs["corpus"]),
                params=json.loads(h5.attrs["params"]),
            )
    except (OSError, KeyError, ValueError) as err:
        why = str(err).splitlines()[0][:160]
        raise ValueError(
            f"{path}: damaged or unreadable feature cache ({type(err).__name__}: {why}); delete it and run `prepare` "
            "again (it is rebuilt from the corpus)"
        ) from None
    labels = table.metadata["label"]
    bad = (labels < -1) | (labels >= len(table.class_names))
    if bad.any():
        raise ValueError(
            f"{path}: damaged feature cache (label {int(labels[bad][0])} outside the {len(table.class_names)} classes "
            f"{list(table.class_names)}); delete it and run `prepare` again (it is rebuilt from the corpus)"
        )
    return table
