"""DE extraction against analytic values, and smoothing against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import signal

from scmm_lightning.corpora.de import DEFAULT_BANDS, band_sos, differential_entropy, lds_smooth, moving_average


def filtered_noise_variance(sigma2: float, low: float, high: float, fs: float, order: int = 4) -> float:
    """Variance of white noise (variance sigma2) after forward-backward filtering: the power response
    is |H|^4, so var = sigma2 * (2 / fs) * integral_0^{fs/2} |H(f)|^4 df."""
    freqs = np.linspace(0, fs / 2, 200_001)
    _, h = signal.sosfreqz(band_sos(low, high, fs, order), worN=freqs, fs=fs)
    return sigma2 * 2 / fs * np.trapezoid(np.abs(h) ** 4, freqs)


@pytest.mark.parametrize("fs", [128.0, 200.0])
def test_de_of_gaussian_noise_matches_analytic_value_in_every_band(fs: float) -> None:
    rng = np.random.default_rng(0)
    sigma = 3.0
    x = sigma * rng.standard_normal((8, int(120 * fs)))  # 8 channels x 120 s
    de = differential_entropy(x, fs)  # (8, 120, 5)
    assert de.shape == (8, 120, 5)
    for b, (low, high) in enumerate(DEFAULT_BANDS.values()):
        expected_var = filtered_noise_variance(sigma**2, low, min(high, 0.99 * fs / 2), fs)
        # average the per-window variances (averaging DE itself would carry the log's bias)
        mean_var = np.mean(np.exp(2 * de[:, 2:-2, b].astype(np.float64)) / (2 * math.pi * math.e))
        assert mean_var == pytest.approx(expected_var, rel=0.04), (low, high)
        # and the filter is close to an ideal band-pass: var ~ sigma^2 * bandwidth / Nyquist
        ideal = sigma**2 * (min(high, fs / 2) - low) / (fs / 2)
        assert mean_var == pytest.approx(ideal, rel=0.2), (low, high)


def test_de_of_pure_sinusoid() -> None:
    fs, amp, f0 = 200.0, 5.0, 10.0  # alpha band centre region
    t = np.arange(int(30 * fs)) / fs
    x = amp * np.sin(2 * math.pi * f0 * t)[None]
    de = differential_entropy(x, fs)[0]  # (30, 5)
    alpha = list(DEFAULT_BANDS).index("alpha")
    _, h = signal.sosfreqz(band_sos(8, 14, fs), worN=[f0], fs=fs)
    expected = 0.5 * math.log(2 * math.pi * math.e * amp**2 / 2 * abs(h[0]) ** 4)
    np.testing.assert_allclose(de[2:-2, alpha], expected, atol=0.01)
    gamma = list(DEFAULT_BANDS).index("gamma")
    assert np.all(de[2:-2, gamma] < expected - 5)  # far outside its band


def test_window_count_and_partial_window_dropped() -> None:
    de = differential_entropy(np.random.default_rng(1).standard_normal((2, 3, 1050)), 200.0, window_seconds=1.0)
    assert de.shape == (2, 3, 5, 5)
    de2 = differential_entropy(np.random.default_rng(1).standard_normal((1, 1000)), 200.0, window_seconds=0.5)
    assert de2.shape == (1, 10, 5)
    with pytest.raises(ValueError, match="shorter than one"):
        differential_entropy(np.zeros((1, 100)), 200.0)


def test_moving_average_matches_loop() -> None:
    x = np.random.default_rng(2).normal(size=(12, 3, 2)).astype(np.float32)
    got = moving_average(x, size=3, axis=0)
    padded = np.concatenate([x[:1], x, x[-1:]])
    expected = np.stack([padded[i : i + 3].mean(0) for i in range(12)])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_lds_closed_forms() -> None:
    y = np.random.default_rng(3).normal(size=(40, 4, 5)).astype(np.float32)
    # no process noise: one constant level, whose posterior mean is the average of all windows
    flat = lds_smooth(y, process_var=0.0, observation_var=1.0)
    np.testing.assert_allclose(flat, np.broadcast_to(y.mean(0), y.shape), rtol=1e-4, atol=1e-5)
    # overwhelming process noise: the observations themselves
    np.testing.assert_allclose(lds_smooth(y, process_var=1e9, observation_var=1.0), y, atol=1e-4)
    # in between: smoother than the input
    mid = lds_smooth(y, 0.05, 1.0)
    assert np.abs(np.diff(mid, axis=0)).mean() < 0.5 * np.abs(np.diff(y, axis=0)).mean()
