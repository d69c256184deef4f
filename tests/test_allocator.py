"""keep_freed_memory: freed CPU tensors recycled by glibc's malloc instead of re-faulted from the kernel."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from scmm_lightning import allocator

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

# 40 MiB tensors: above the largest mmap threshold glibc's dynamic rule reaches (32 MiB), so without
# the fixed thresholds every one is mapped afresh and each of its 10,240 pages faults on first touch.
# With them the heap grows for the first few (an aligned request is a little larger than the block
# freed before it, until freed neighbours merge: 2-10 tensors here) and then serves every one
FAULTS = """
import resource, torch
from scmm_lightning.allocator import keep_freed_memory
applied = keep_freed_memory()
for _ in range(15):
    torch.empty(10 << 20).fill_(1.0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    torch.empty(10 << 20).fill_(1.0)
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(**env: str) -> tuple[bool, int]:
    ours = (*allocator.USER_SETTINGS, allocator.OPT_OUT, "GLIBC_TUNABLES")
    clean = {k: v for k, v in os.environ.items() if k not in ours}
    out = subprocess.run([sys.executable, "-c", FAULTS], env={**clean, "OMP_NUM_THREADS": "1", **env},
                         capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    return out[0] == "True", int(out[1])


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_freed_tensors_are_recycled_not_faulted_again():
    applied, kept = _faults()
    opted_out, returned = _faults(**{allocator.OPT_OUT: "0"})
    assert applied and not opted_out
    # returned to the kernel: at least one fault per tensor (a huge page each where THP is "always",
    # 10,240 small pages otherwise); recycled: the heap's pages are touched already
    assert returned >= 20
    assert kept * 10 <= returned, (kept, returned)


def test_user_settings_and_opt_out_are_left_alone(monkeypatch):
    for name in (*allocator.USER_SETTINGS, allocator.OPT_OUT, "GLIBC_TUNABLES"):  # each case alone
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert not allocator._apply()
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=131072")
    assert not allocator._apply()
    monkeypatch.delenv("GLIBC_TUNABLES")
    monkeypatch.setenv(allocator.OPT_OUT, "0")
    assert not allocator._apply()
