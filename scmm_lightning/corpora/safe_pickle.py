"""Load DEAP's Python-2 pickles without letting them run code."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

# (module, name) pairs a numpy-array pickle needs; numpy 2 renamed numpy.core to numpy._core.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("copy_reg", "_reconstructor"),
    ("copyreg", "_reconstructor"),
    ("__builtin__", "object"),
    ("builtins", "object"),
    # protocol-2 pickles written by Python 3 rebuild bytes (the array buffers) with this
    ("_codecs", "encode"),
}


class UnsafePickleError(ValueError):
    """A pickle asked for something other than numpy arrays and plain containers."""


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file, source: str) -> None:  # noqa: ANN001
        super().__init__(file, encoding="bytes")  # 8-bit strings stay bytes: no decode/re-encode
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise UnsafePickleError(
                f"{self.source}: refusing to load: the pickle asks for {module}.{name}, but DEAP files hold only "
                "numpy arrays in a dict. The file is not an original DEAP file; replace it with the original."
            )
        if module.startswith("numpy") and module.endswith("multiarray"):
            try:
                from numpy._core import multiarray  # numpy >= 2
            except ImportError:  # pragma: no cover - numpy 1.x
                from numpy.core import multiarray
            return getattr(multiarray, name)
        if module == "numpy":
            return getattr(np, name)
        if module == "_codecs":
            import codecs

            return codecs.encode
        if module in ("copy_reg", "copyreg"):
            import copyreg

            return getattr(copyreg, name)
        return object


def load_numpy_pickle(path: str | Path) -> Any:
    """Unpickle ``path`` admitting only numpy array reconstruction and plain containers."""
    path = Path(path)
    with path.open("rb") as fh:
        try:
            obj = _NumpyOnlyUnpickler(fh, str(path)).load()
        except UnsafePickleError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
            raise ValueError(f"{path}: not a readable DEAP pickle (truncated or corrupt?): {err}") from err
    if isinstance(obj, dict):  # Python 2 str keys arrive as bytes
        obj = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}
    return obj
