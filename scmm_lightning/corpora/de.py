"""Differential-entropy (DE) features from raw EEG, and their smoothing over windows.

For a band-passed signal that is Gaussian within a window, DE = 0.5 * log(2 * pi * e * var).
Filtering is zero-phase (Butterworth, forward-backward with ``scipy.signal.sosfiltfilt``) over whole
trials at once, vectorised over trials and channels; bands run in a thread pool (SciPy releases the
GIL), windows are a reshape: no Python loop over windows or channels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import signal
from scipy.ndimage import uniform_filter1d

from ..field_types import check_field_types

DEFAULT_BANDS: dict[str, tuple[float, float]] = {
    "delta": (1.0, 4.0),
    "theta": (4.0, 8.0),
    "alpha": (8.0, 14.0),
    "beta": (14.0, 31.0),
    "gamma": (31.0, 50.0),
}


def band_sos(low: float, high: float, sfreq: float, order: int = 4) -> np.ndarray:
    """Butterworth band-pass in second-order sections; ``high`` is capped just below Nyquist."""
    nyquist = sfreq / 2.0
    if not 0 < low < nyquist:
        raise ValueError(f"band ({low}, {high}) Hz is not below the Nyquist frequency {nyquist} Hz of {sfreq} Hz data")
    high = min(high, 0.99 * nyquist)
    return signal.butter(order, [low, high], btype="bandpass", fs=sfreq, output="sos")


def differential_entropy(
    data: np.ndarray,
    sfreq: float,
    bands: Mapping[str, tuple[float, float]] | None = None,
    window_seconds: float = 1.0,
    order: int = 4,
    workers: int = 2,
) -> np.ndarray:
    """DE of ``data`` (..., n_samples) per non-overlapping window and band.

    Returns float32 (..., n_windows, n_bands) with ``n_windows = n_samples // (sfreq * window_seconds)``
    (a trailing partial window is dropped).
    """
    bands = dict(DEFAULT_BANDS if bands is None else bands)
    win = int(round(sfreq * window_seconds))
    if win < 2:
        raise ValueError(f"window_seconds={window_seconds} at {sfreq} Hz gives fewer than 2 samples per window")
    n_windows = data.shape[-1] // win
    if n_windows == 0:
        raise ValueError(f"signal of {data.shape[-1]} samples is shorter than one {window_seconds} s window")
    data = np.asarray(data, dtype=np.float64)

    def de_of(filtered: np.ndarray) -> np.ndarray:
        windows = filtered[..., : n_windows * win].reshape(*data.shape[:-1], n_windows, win)
        var = windows.var(axis=-1)
        return 0.5 * np.log(2 * math.pi * math.e * np.maximum(var, 1e-20))

    def one_band(edges: tuple[float, float]) -> np.ndarray:
        return de_of(signal.sosfiltfilt(band_sos(edges[0], edges[1], sfreq, order), data, axis=-1))

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        per_band = list(pool.map(one_band, bands.values()))
    return np.stack(per_band, axis=-1).astype(np.float32)


def moving_average(features: np.ndarray, size: int = 5, axis: int = 0) -> np.ndarray:
    """Centred moving average of ``size`` windows along ``axis`` (edges repeat the end value)."""
    if size <= 1:
        return features
    return uniform_filter1d(features.astype(np.float64), size=size, axis=axis, mode="nearest").astype(np.float32)


def lds_smooth(
    features: np.ndarray, process_var: float = 0.01, observation_var: float = 1.0, axis: int = 0
) -> np.ndarray:
    """Linear-dynamical-system (Kalman / Rauch-Tung-Striebel) smoothing along ``axis``.

    Local-level model per feature: ``s_t = s_{t-1} + w_t``, ``y_t = s_t + v_t`` with
    ``w ~ N(0, process_var)``, ``v ~ N(0, observation_var)``, ``s_0 ~ N(y_0, observation_var)``.
    The gains do not depend on the data, so one scalar recursion serves every feature.
    """
    y = np.moveaxis(features.astype(np.float64), axis, 0)
    t_len = y.shape[0]
    q, r = float(process_var), float(observation_var)
    m_filt = np.empty_like(y)
    p_filt = np.empty(t_len)
    p_pred = np.empty(t_len)
    m_filt[0], p_filt[0], p_pred[0] = y[0], r, r
    for t in range(1, t_len):
        p_pred[t] = p_filt[t - 1] + q
        gain = p_pred[t] / (p_pred[t] + r)
        m_filt[t] = m_filt[t - 1] + gain * (y[t] - m_filt[t - 1])
        p_filt[t] = (1 - gain) * p_pred[t]
    smooth = m_filt.copy()
    for t in range(t_len - 2, -1, -1):
        c = p_filt[t] / p_pred[t + 1]
        smooth[t] = m_filt[t] + c * (smooth[t + 1] - m_filt[t])
    return np.moveaxis(smooth, 0, axis).astype(np.float32)


@dataclass(frozen=True)
class RawDEConfig:
    """How raw signals become DE features (every reader of raw signals uses it).

    Args:
        window_seconds: length of the non-overlapping windows.
        bands: (low, high) Hz of each band, in order.
        filter_order: Butterworth order of the band-pass filters.
        smoothing: ``none``, ``moving_average`` or ``lds`` over the windows of one trial.
        moving_average_size: windows of the moving average.
        lds_process_var: LDS smoothing: process variance.
        lds_observation_var: LDS smoothing: observation variance.
    """

    window_seconds: float = 1.0
    bands: tuple[tuple[float, float], ...] = tuple(DEFAULT_BANDS.values())
    filter_order: int = 4
    smoothing: Literal["none", "moving_average", "lds"] = "none"
    moving_average_size: int = 5
    lds_process_var: float = 0.01
    lds_observation_var: float = 1.0

    def __post_init__(self) -> None:
        check_field_types(self, "raw")

    def smooth(self, features: np.ndarray) -> np.ndarray:
        """Smooth (W, C, F) over windows of one trial."""
        if self.smoothing == "moving_average":
            return moving_average(features, self.moving_average_size, axis=0)
        if self.smoothing == "lds":
            return lds_smooth(features, self.lds_process_var, self.lds_observation_var, axis=0)
        return features

    def extract(self, trials: list[np.ndarray], sfreq: float) -> list[np.ndarray]:
        """DE (W_t, C, F) for each raw trial (C, n_t); equal-length trials are filtered as one array."""
        bands = {str(i): b for i, b in enumerate(self.bands)}
        lengths = {t.shape[-1] for t in trials}
        if len(lengths) == 1:
            de = differential_entropy(np.stack(trials), sfreq, bands, self.window_seconds, self.filter_order)
            per_trial = [de[i].transpose(1, 0, 2) for i in range(len(trials))]
        else:
            per_trial = [
                differential_entropy(t, sfreq, bands, self.window_seconds, self.filter_order).transpose(1, 0, 2)
                for t in trials
            ]
        return [self.smooth(f) for f in per_trial]
