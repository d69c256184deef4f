"""Write DEAP-layout files: data_preprocessed_python/sNN.dat as Python-2-era pickles.

    python tests/data/deap/generate.py OUT_DIR

Each file is a protocol-2 pickle of {'labels': float64 (40, 4), 'data': float64 (40, 40, 8064)} as
Python 2's cPickle wrote them: array buffers as 8-bit strings (BINSTRING) and the reconstruction
function named numpy.core.multiarray._reconstruct.
"""

from __future__ import annotations

import io
import pickle
import struct
import sys
from pathlib import Path

import numpy as np


class _Python2Pickler(pickle._Pickler):
    """Pickles ``bytes`` the way Python 2 pickled ``str``: BINSTRING, not _codecs.encode."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)))
            self.write(obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes

    def save_str(self, obj: str) -> None:  # dict keys were 8-bit strings in Python 2 too
        self.save_bytes(obj.encode("latin1"))

    dispatch[str] = save_str


def deap_pickle(obj: object) -> bytes:
    buf = io.BytesIO()
    _Python2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def write_deap(root: Path, subjects: tuple[int, ...] = (1, 2), seed: int = 2, valence_alpha: float = 0.0) -> Path:
    """``valence_alpha`` > 0: trials rated valence > 5 carry a 10 Hz rhythm of that amplitude (uV) on
    every EEG channel after the 3 s baseline, so their alpha DE separates the two classes."""
    rng = np.random.default_rng(seed)
    folder = root / "data_preprocessed_python"
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(8064 - 384) / 128.0
    for subject in subjects:
        data = 10.0 * rng.standard_normal((40, 40, 8064), dtype=np.float32).astype(np.float64)
        labels = np.round(rng.uniform(1, 9, size=(40, 4)), 2)
        if valence_alpha:
            high = labels[:, 0] > 5
            phase = rng.uniform(0, 2 * np.pi, size=(40, 32, 1))
            data[high, :32, 384:] += valence_alpha * np.sin(2 * np.pi * 10.0 * t + phase[high])
        (folder / f"s{subject:02d}.dat").write_bytes(deap_pickle({"labels": labels, "data": data}))
    return root


if __name__ == "__main__":
    write_deap(Path(sys.argv[1]))
