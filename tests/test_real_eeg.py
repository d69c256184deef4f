"""DE extraction on real EEG (PhysioNet "EEG During Mental Arithmetic Tasks", ../shared/data/eegmat).
Skipped where the recordings are absent."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from scmm_lightning.data.channels import canonical
from scmm_lightning.data.de import differential_entropy

EEGMAT = Path(__file__).resolve().parents[2] / "shared" / "data" / "eegmat"
pytestmark = pytest.mark.skipif(not (EEGMAT / "Subject00_1.edf").exists(), reason="eegmat recordings absent")


def occipital(subject: int, part: int) -> tuple[np.ndarray, float]:
    mne = pytest.importorskip("mne")
    raw = mne.io.read_raw_edf(EEGMAT / f"Subject{subject:02d}_{part}.edf", preload=True, verbose="ERROR")
    names = [canonical(n) for n in raw.ch_names]
    idx = [names.index("O1"), names.index("O2")]
    return raw.get_data()[idx] * 1e6, float(raw.info["sfreq"])


def test_alpha_de_is_higher_at_rest_than_during_arithmetic() -> None:
    """Alpha blocking: occipital alpha power drops during a mental task (eyes-closed rest vs task)."""
    higher = 0
    for subject in range(12):
        rest, fs = occipital(subject, 1)
        task, _ = occipital(subject, 2)
        alpha = 2
        higher += differential_entropy(rest, fs)[..., alpha].mean() > differential_entropy(task, fs)[..., alpha].mean()
    assert higher >= 10


def test_alpha_de_agrees_with_welch_band_power() -> None:
    x, fs = occipital(3, 1)
    de = differential_entropy(x, fs)[..., 2]  # (2, windows)
    f, pxx = signal.welch(x, fs=fs, nperseg=int(2 * fs))
    band = (f >= 8) & (f <= 14)
    power = np.trapezoid(pxx[:, band], f[band], axis=1)
    mean_var = (np.exp(2 * de.astype(np.float64)) / (2 * math.pi * math.e)).mean(axis=1)
    np.testing.assert_allclose(mean_var, power, rtol=0.15)
