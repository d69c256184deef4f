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

import numpy as np

from .base import WindowDataModule
from .channels import DEAP_32, SEED_62, select_channels
from .splits import SplitConfig
from .windows import Normalization


def default_montage(num_channels: int) -> tuple[str, ...]:
    """DEAP's 32 electrodes for 32 channels, else the first ``num_channels`` of SEED's 62."""
    if num_channels == 32:
        return DEAP_32
    if not 1 <= num_channels <= len(SEED_62):
        raise ValueError(f"synthetic corpora support 1..62 channels, got num_channels={num_channels}")
    return SEED_62[:num_channels]


def generate_synthetic_corpus(
    channels: Sequence[str],
    num_classes: int = 3,
    num_subjects: int = 15,
    num_sessions: int = 1,
    trials_per_session: int = 15,
    windows_per_trial: int = 60,
    num_bands: int = 5,
    class_strength: float = 0.6,
    subject_std: float = 0.5,
    session_std: float = 0.2,
    trial_std: float = 0.3,
    corpus_shift: float = 1.0,
    ar_coef: float = 0.9,
    drift_std: float = 0.4,
    noise_std: float = 0.3,
    seed: int = 0,
    pattern_seed: int = 1234,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Return ``features`` float32 (N, C, F) and metadata arrays (subject, session, trial, window, label)."""
    if num_classes < 2 or trials_per_session < num_classes:
        raise ValueError(
            f"need num_classes >= 2 and trials_per_session >= num_classes, got {num_classes}, {trials_per_session}"
        )
    if not 0.0 <= ar_coef < 1.0:
        raise ValueError(f"ar_coef must be in [0, 1), got {ar_coef}")
    world = np.random.default_rng(pattern_seed)
    base_all = np.linspace(2.0, 0.6, num_bands)[None, :] + 0.2 * world.standard_normal((len(SEED_62), num_bands))
    bank = world.standard_normal((max(num_classes, 8), len(SEED_62), num_bands))
    idx = select_channels(SEED_62, channels)
    base, patterns = base_all[idx], bank[:num_classes, idx]

    rng = np.random.default_rng(seed)
    c, f = len(idx), num_bands
    s, e, t, w = num_subjects, num_sessions, trials_per_session, windows_per_trial
    corpus_offset = corpus_shift * rng.standard_normal((c, f))
    subject_offset = subject_std * rng.standard_normal((s, 1, 1, 1, c, f))
    session_offset = session_std * rng.standard_normal((s, e, 1, 1, c, f))
    # every consecutive block of num_classes trials holds each class once (order shuffled within the
    # block), so a split after any multiple of num_classes trials keeps the classes balanced
    blocks = -(-t // num_classes)
    labels = np.stack([np.concatenate([rng.permutation(num_classes) for _ in range(blocks)])[:t] for _ in range(s * e)])
    labels = labels.reshape(s, e, t)
    trial_offset = trial_std * rng.standard_normal((s, e, t, 1, c, f))
    innovations = rng.standard_normal((s, e, t, w, c, f))
    drift = np.empty_like(innovations)
    drift[:, :, :, 0] = innovations[:, :, :, 0]
    gain = np.sqrt(1.0 - ar_coef**2)  # keeps the drift stationary with unit variance
    for k in range(1, w):
        drift[:, :, :, k] = ar_coef * drift[:, :, :, k - 1] + gain * innovations[:, :, :, k]
    noise = noise_std * rng.standard_normal((s, e, t, w, c, f))
    x = (
        base
        + corpus_offset
        + subject_offset
        + session_offset
        + trial_offset
        + class_strength * patterns[labels][:, :, :, None]
        + drift_std * drift
        + noise
    )
    grid = np.meshgrid(np.arange(s), np.arange(e), np.arange(t), np.arange(w), indexing="ij")
    metadata = {
        "subject": grid[0].ravel(),
        "session": grid[1].ravel(),
        "trial": grid[2].ravel(),
        "window": grid[3].ravel(),
        "label": np.broadcast_to(labels[..., None], (s, e, t, w)).ravel(),
    }
    return x.reshape(-1, c, f).astype(np.float32), metadata


class SyntheticEEGDataModule(WindowDataModule):
    """Synthetic corpus for demos and tests (see the module docstring for the generative model).

    Two different corpora come from different settings, e.g. ``num_channels=62, num_classes=3,
    seed=0`` and ``num_channels=32, num_classes=2, seed=1`` (same ``pattern_seed``).

    Args:
        num_channels: electrodes generated (32 gives DEAP's montage, else the first of SEED's 62).
        num_classes: emotion classes; trials are balanced over them within every session.
        num_subjects: subjects (numbered from 1).
        num_sessions: sessions per subject (numbered from 1).
        trials_per_session: trials per session (numbered from 1).
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
        subjects: subject ids to keep (default all).
        sessions: session ids to keep (default all).
        channels: electrode names to keep, in this order (default all generated).
        label_map: own class index -> new index; unmapped classes are dropped.
        split: train/test split (default: none, everything trains).
        normalization: ``minmax`` / ``zscore`` / ``none`` (training split only) or ``subject_*``.
        batch_size: training batch size (originals per step).
        num_workers: DataLoader workers.
        shuffle_seed: seed of the epoch-wise training order.
    """

    corpus_name = "synthetic"

    def __init__(
        self,
        num_channels: int = 62,
        num_classes: int = 3,
        num_subjects: int = 15,
        num_sessions: int = 1,
        trials_per_session: int = 15,
        windows_per_trial: int = 60,
        num_bands: int = 5,
        class_strength: float = 0.6,
        subject_std: float = 0.5,
        session_std: float = 0.2,
        trial_std: float = 0.3,
        corpus_shift: float = 1.0,
        ar_coef: float = 0.9,
        drift_std: float = 0.4,
        noise_std: float = 0.3,
        seed: int = 0,
        pattern_seed: int = 1234,
        subjects: list[int] | None = None,
        sessions: list[int] | None = None,
        channels: list[str] | None = None,
        label_map: dict[int, int] | None = None,
        split: SplitConfig | None = None,
        normalization: Normalization = "minmax",
        batch_size: int = 256,
        num_workers: int = 0,
        shuffle_seed: int = 0,
    ) -> None:
        super().__init__(
            subjects,
            sessions,
            channels,
            label_map,
            split,
            normalization,
            batch_size,
            num_workers,
            shuffle_seed,
            num_bands,
        )
        # explicit, not save_hyperparameters: under LightningCLI nested datamodules get the CLI's hparams
        self.generator_args = dict(
            num_classes=num_classes,
            num_subjects=num_subjects,
            num_sessions=num_sessions,
            trials_per_session=trials_per_session,
            windows_per_trial=windows_per_trial,
            num_bands=num_bands,
            class_strength=class_strength,
            subject_std=subject_std,
            session_std=session_std,
            trial_std=trial_std,
            corpus_shift=corpus_shift,
            ar_coef=ar_coef,
            drift_std=drift_std,
            noise_std=noise_std,
            seed=seed,
            pattern_seed=pattern_seed,
        )
        self.all_channel_names = default_montage(num_channels)
        self.all_class_names = tuple(f"class{k}" for k in range(num_classes))
        if num_classes < 2 or trials_per_session < num_classes:
            raise ValueError(
                f"need num_classes >= 2 and trials_per_session >= num_classes, got {num_classes}, {trials_per_session}"
            )

    def load_windows(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        features, meta = generate_synthetic_corpus(self.all_channel_names, **self.generator_args)
        for key in ("subject", "session", "trial"):  # numbered from 1, as in the real corpora
            meta[key] = meta[key] + 1
        return features, meta
