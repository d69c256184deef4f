"""Own-recordings preparation on real EEG: the 24 EDF files of ../shared/data/eegmat -> DE cache.

Runs ``python -m scmm_lightning prepare --corpus recordings`` as a user would (a fresh process, a
fresh cache directory: EDF reading, channel normalisation, 19 electrodes x 5 bands zero-phase
filtering, 1 s windows, HDF5 writing), then times reloading that cache in this process. Also
reports the preparation with ``--resample 200``. Last line: JSON.

    python benchmarks/prepare_recordings.py [--eegmat DIR]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scmm_lightning.cli.options import StrictArgumentParser
from scmm_lightning.corpora.cache import load_cache

ROOT = Path(__file__).resolve().parents[1]


def write_table(eegmat: Path, path: Path) -> None:
    rows = ["file,subject,session,trial,label"]
    rows += [f"Subject{s:02d}_{p}.edf,{s},1,{p},{('rest', 'task')[p - 1]}" for s in range(12) for p in (1, 2)]
    path.write_text("\n".join(rows) + "\n")
    missing = [r.split(",")[0] for r in rows[1:] if not (eegmat / r.split(",")[0]).exists()]
    if missing:
        sys.exit(f"{eegmat}: {len(missing)} recordings missing (e.g. {missing[0]}); pass --eegmat DIR")


def prepare(eegmat: Path, table: Path, cache: Path, *extra: str) -> float:
    cmd = [sys.executable, "-m", "scmm_lightning", "prepare", "--corpus", "recordings", "--root", str(eegmat)]
    cmd += ["--table", str(table), "--name", "eegmat", "--cache_dir", str(cache), "--no_progress", *extra]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    seconds = time.perf_counter() - t0
    print(out.strip())
    return seconds


def main() -> None:
    parser = StrictArgumentParser(description=__doc__)
    default = os.environ.get("SCMM_EEGMAT_DIR") or str(ROOT.parent / "shared" / "data" / "eegmat")
    parser.add_argument("--eegmat", default=default, help="folder of SubjectNN_M.edf (default: %(default)s)")
    args = parser.parse_args()
    eegmat = Path(args.eegmat)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_table(eegmat, tmp / "eegmat.csv")
        native = prepare(eegmat, tmp / "eegmat.csv", tmp / "cache")
        resampled = prepare(eegmat, tmp / "eegmat.csv", tmp / "cache_200", "--resample", "200")
        path = next((tmp / "cache").glob("eegmat-*.h5"))
        t0 = time.perf_counter()
        table = load_cache(path)
        reload = time.perf_counter() - t0
    result = {
        "recordings": 24,
        "windows": int(len(table.features)),
        "prepare_s": round(native, 2),
        "prepare_resample_200_s": round(resampled, 2),
        "reload_s": round(reload, 4),
        "cpu_threads": os.cpu_count(),
    }
    print(f"prepare (process start to exit, 24 EDF files): {native:.1f} s; with --resample 200: {resampled:.1f} s")
    print(f"reload of the cache: {reload:.3f} s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
