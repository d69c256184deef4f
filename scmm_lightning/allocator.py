"""Freed CPU memory kept for reuse instead of handed back to the kernel (glibc's malloc).

glibc returns a freed block larger than its mmap threshold to the kernel at once (the threshold
starts at 128 KiB and rises with the blocks freed, to at most 32 MiB), and gives back the free top
of its heap beyond the trim threshold (twice the mmap threshold). The next tensor of that size then
lands on fresh pages, and the kernel zeroes each 4 KiB page at its first touch (a minor page fault).
The batched evaluation allocates and frees tensors of megabytes at every step (32 stacked models'
activations, convolution matrices and gradients; the probe solver's histories), so it paid that
at every step: the batched fine-tuning call of ``benchmarks/evaluation.py --workloads finetune``
(32 DEAP-shaped subjects x 3 rows, 2 epochs, a fresh process) took 395,000-555,000 minor faults
(~2 GiB of pages zeroed) against 81,000-85,000 with both thresholds fixed high, and one stacked
training step of 32 CNNs 74-86 ms against 60-64 ms (2-core Intel Xeon, 3 alternating processes
each, ``ru_minflt`` and wall time; the per-model loop's faults fell too, 263,000-346,000 to
11,000-13,000, but not its time: its tensors are small).

:func:`keep_freed_memory` fixes the thresholds high (``MMAP_THRESHOLD``, ``TRIM_THRESHOLD``) once
per process, where the C library is glibc: freed blocks below 256 MiB go back to malloc's free lists
and the heap keeps up to 1 GiB of free top, so the process's resident memory stays near its peak
instead of shrinking between steps. Left alone: another C library or allocator, a user's own
threshold settings (``MALLOC_MMAP_THRESHOLD_`` and the like, ``GLIBC_TUNABLES=glibc.malloc...``),
and ``SCMM_KEEP_FREED_MEMORY=0`` (opt out).
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1  # mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 256 << 20  # blocks up to this size come from (and return to) the heap, not mmap
TRIM_THRESHOLD = 1 << 30  # free heap top kept before giving memory back to the kernel
OPT_OUT = "SCMM_KEEP_FREED_MEMORY"
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")

_applied: bool | None = None  # keep_freed_memory's outcome, once per process


def _user_tuned() -> bool:
    """The user chose these thresholds already (environment settings glibc reads at start-up)."""
    return any(k in os.environ for k in USER_SETTINGS) or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", "")


def _apply() -> bool:
    if os.environ.get(OPT_OUT, "1") == "0" or not sys.platform.startswith("linux") or _user_tuned():
        return False
    try:
        libc = ctypes.CDLL(None)  # the C library this process runs on
        libc.gnu_get_libc_version  # noqa: B018 (glibc only: other C libraries' mallopt differ)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def keep_freed_memory() -> bool:
    """Fix glibc's mmap and trim thresholds high for this process (once; module docstring). True
    where they were set, False where left alone (not glibc, tuned by the user, or opted out)."""
    global _applied
    if _applied is None:
        _applied = _apply()
    return _applied
