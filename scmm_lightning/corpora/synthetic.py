"""A synthetic DE-feature corpus, generated in memory from a seed (no download).

Hierarchy: corpus -> subject -> session -> trial -> 1-second window; each window is a (C, F) matrix
of DE-like values::

    x = base + corpus_offset + subject_offset[s] + session_offset[s, e]
        + class_strength * pattern[label] + trial_offset + drift_t + noise

- ``base`` and ``pattern`` (class-specific spatial-spectral patterns) live on the 62-electrode
  SEED montage and come from ``pattern_seed``: corpora generated with the same pattern seed share
  them on the electrodes they share, so transfer between corpora is meaningful;
- ``drift_t`` is an AR(1) process over the windows of a trial (short-term continuity);
- the corpus-level shift, subject and session offsets come from ``seed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .channels import DEAP_32, SEED_62, select_channels


def default_montage(num_channels: int) -> tuple[str, ...]:
    """DEAP's 32 electrodes for 32 channels, else the first ``num_channels`` of SEED's 62."""
    if num_channels == 32:
        return DEAP_32
    if not 1 <= num_channels <= len(SEED_62):
        raise ValueError(f"synthetic corpora support 1..62 channels, got num_channels={num_channels}")
    return SEED_62[:num_channels]


@dataclass(frozen=True)
class SyntheticCorpusSpec:
    """Settings of the generative model (module docstring).

    Args:
        num_classes: emotion classes; trials are balanced over them within every session.
        num_subjects: subjects.
        num_sessions: sessions per subject.
        trials_per_session: trials per session.
        windows_per_trial: 1-second windows per trial.
        num_bands: frequency bands.
        class_strength: amplitude of the class patterns.
        subject_std: std of per-subject offsets.
        session_std: std of per-session offsets.
        trial_std: std of per-trial offsets.
        corpus_shift: std of the corpus-level offset.
        ar_coef: AR(1) coefficient of the within-trial drift.
        drift_std: std of the drift.
        noise_std: std of white noise per window.
        seed: corpus seed (offsets, labels, noise).
        pattern_seed: seed of the patterns shared between corpora.
    """

    num_classes: int = 3
    num_subjects: int = 15
    num_sessions: int = 1
    trials_per_session: int = 15
    windows_per_trial: int = 60
    num_bands: int = 5
    class_strength: float = 0.6
    subject_std: float = 0.5
    session_std: float = 0.2
    trial_std: float = 0.3
    corpus_shift: float = 1.0
    ar_coef: float = 0.9
    drift_std: float = 0.4
    noise_std: float = 0.3
    seed: int = 0
    pattern_seed: int = 1234

    def __post_init__(self) -> None:
        if self.num_classes < 2 or self.trials_per_session < self.num_classes:
            raise ValueError(
                "need num_classes >= 2 and trials_per_session >= num_classes, got "
                f"{self.num_classes}, {self.trials_per_session}"
            )
        if not 0.0 <= self.ar_coef < 1.0:
            raise ValueError(f"ar_coef must be in [0, 1), got {self.ar_coef}")


def generate_synthetic_corpus(
    channels: Sequence[str], spec: SyntheticCorpusSpec | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Return ``features`` float32 (N, C, F) and metadata arrays (subject, session, trial, window,
    label; subjects, sessions and trials numbered from 1 as in the real corpora)."""
    spec = spec or SyntheticCorpusSpec()
    num_classes, trials_per_session, num_bands = spec.num_classes, spec.trials_per_session, spec.num_bands
    ar_coef = spec.ar_coef
    world = np.random.default_rng(spec.pattern_seed)
    base_all = np.linspace(2.0, 0.6, num_bands)[None, :] + 0.2 * world.standard_normal((len(SEED_62), num_bands))
    bank = world.standard_normal((max(num_classes, 8), len(SEED_62), num_bands))
    idx = select_channels(SEED_62, channels)
    base, patterns = base_all[idx], bank[:num_classes, idx]

    rng = np.random.default_rng(spec.seed)
    c, f = len(idx), num_bands
    s, e, t, w = spec.num_subjects, spec.num_sessions, trials_per_session, spec.windows_per_trial
    corpus_offset = spec.corpus_shift * rng.standard_normal((c, f))
    subject_offset = spec.subject_std * rng.standard_normal((s, 1, 1, 1, c, f))
    session_offset = spec.session_std * rng.standard_normal((s, e, 1, 1, c, f))
    # every consecutive block of num_classes trials holds each class once (order shuffled within the
    # block), so a split after any multiple of num_classes trials keeps the classes balanced
    blocks = -(-t // num_classes)
    labels = np.stack([np.concatenate([rng.permutation(num_classes) for _ in range(blocks)])[:t] for _ in range(s * e)])
    labels = labels.reshape(s, e, t)
    trial_offset = spec.trial_std * rng.standard_normal((s, e, t, 1, c, f))
    innovations = rng.standard_normal((s, e, t, w, c, f))
    drift = np.empty_like(innovations)
    drift[:, :, :, 0] = innovations[:, :, :, 0]
    gain = np.sqrt(1.0 - ar_coef**2)  # keeps the drift stationary with unit variance
    for k in range(1, w):
        drift[:, :, :, k] = ar_coef * drift[:, :, :, k - 1] + gain * innovations[:, :, :, k]
    noise = spec.noise_std * rng.standard_normal((s, e, t, w, c, f))
    x = (
        base
        + corpus_offset
        + subject_offset
        + session_offset
        + trial_offset
        + spec.class_strength * patterns[labels][:, :, :, None]
        + spec.drift_std * drift
        + noise
    )
    grid = np.meshgrid(np.arange(s), np.arange(e), np.arange(t), np.arange(w), indexing="ij")
    metadata = {
        "subject": grid[0].ravel() + 1,
        "session": grid[1].ravel() + 1,
        "trial": grid[2].ravel() + 1,
        "window": grid[3].ravel(),
        "label": np.broadcast_to(labels[..., None], (s, e, t, w)).ravel(),
    }
    return x.reshape(-1, c, f).astype(np.float32), metadata
