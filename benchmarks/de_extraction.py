"""DEAP-shaped raw -> DE extraction on the CPU, and the cache reload time.

Writes ``--subjects`` DEAP-layout pickles (40 trials x 40 channels x 8064 samples at 128 Hz,
random values) to a temporary directory, builds the feature cache through the real reader
(unpickling, 32 EEG channels x 5 bands zero-phase filtering, 1 s windows, baseline subtraction,
HDF5 writing), reports seconds per subject and the time extrapolated to DEAP's 32 subjects, then
times reloading a cache of the full corpus's size (32 subjects). Peak memory (max RSS) is read
after preparing. Last line: JSON.

    python benchmarks/de_extraction.py [--subjects 4]
"""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from scmm_lightning.cli.options import StrictArgumentParser
from scmm_lightning.corpora import DeapReader
from scmm_lightning.corpora.cache import build_cache, load_cache

ROOT = Path(__file__).resolve().parents[1]


def deap_writer():
    spec = importlib.util.spec_from_file_location("deap_fixture", ROOT / "tests" / "data" / "deap" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_deap


def prepare(root: str, cache_dir: str) -> tuple[str, float, float]:
    t0 = time.perf_counter()
    path = build_cache(DeapReader(root), cache_dir, progress=False)
    seconds = time.perf_counter() - t0
    return str(path), seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    parser = StrictArgumentParser(description=__doc__)
    parser.add_argument("--subjects", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        deap_writer()(tmp / "DEAP", subjects=tuple(range(1, args.subjects + 1)))
        # prepare in a child process so its peak memory is the preparation's alone
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            path, seconds, peak_gib = pool.apply(prepare, (str(tmp / "DEAP"), str(tmp / "cache")))
        per_subject = seconds / args.subjects
        table = load_cache(path)
        # a cache the size of all 32 subjects, to time the reload
        reps = int(np.ceil(32 / args.subjects))
        full = tmp / "full.h5"
        with h5py.File(path, "r") as src, h5py.File(full, "w") as dst:
            for key in src:
                data = np.concatenate([src[key][()]] * reps)[: 32 * 40 * 60]
                dst.create_dataset(key, data=data, chunks=(min(4096, len(data)),) + data.shape[1:])
            for k, v in src.attrs.items():
                dst.attrs[k] = v
        t0 = time.perf_counter()
        full_table = load_cache(full)
        reload_s = time.perf_counter() - t0
    print(f"{args.subjects} DEAP-shaped subjects: {per_subject:.2f} s per subject (unpickle + DE + cache write)")
    print(f"extrapolated to 32 subjects: {per_subject * 32:.1f} s")
    print(f"peak memory while preparing: {peak_gib:.2f} GiB (max RSS of the preparing process)")
    print(
        f"reload of a 32-subject cache ({full_table.features.shape[0]} windows x {table.features.shape[1:]}): {reload_s:.2f} s"
    )
    print(
        json.dumps(
            {
                "seconds_per_subject": round(per_subject, 3),
                "extrapolated_32_subjects_s": round(per_subject * 32, 1),
                "reload_s": round(reload_s, 3),
                "peak_rss_gib": round(peak_gib, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
