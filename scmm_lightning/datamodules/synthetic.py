"""The synthetic corpus as a datamodule (the generative model: :mod:`scmm_lightning.corpora.synthetic`)."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

import numpy as np

from ..corpora import CorpusInfo, SyntheticCorpusSpec, generate_synthetic_corpus
from ..corpora.synthetic import default_montage
from .base import WindowDataModule


class SyntheticEEGDataModule(WindowDataModule):
    """Synthetic corpus for demos and tests, generated in memory from a seed.

    Two different corpora come from different settings, e.g. ``num_channels=62, num_classes=3,
    seed=0`` and ``num_channels=32, num_classes=2, seed=1`` (same ``pattern_seed``).

    Args:
        num_channels: electrodes generated (32 gives DEAP's montage, else the first of SEED's 62).

    Every other generator argument (``num_classes`` ... ``pattern_seed``) is a field of
    :class:`~scmm_lightning.corpora.SyntheticCorpusSpec`, documented there; the selection, split,
    normalisation and loader arguments are :class:`~scmm_lightning.datamodules.base.WindowDataModule`'s.
    """

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
        **kwargs,
    ) -> None:
        given = locals()
        self.check_own_arguments(given, SyntheticEEGDataModule)
        # explicit, not save_hyperparameters: under LightningCLI nested datamodules get the CLI's hparams
        self.spec = SyntheticCorpusSpec(**{f.name: given[f.name] for f in fields(SyntheticCorpusSpec)})
        super().__init__(**kwargs)
        self._info = CorpusInfo(
            "synthetic", "synthetic", default_montage(num_channels), tuple(f"class{k}" for k in range(num_classes))
        )

    @property
    def info(self) -> CorpusInfo:
        return self._info

    @property
    def num_bands(self) -> int:
        return self.spec.num_bands

    def feature_description(self) -> dict[str, Any]:
        return {"source": "synthetic generator", **asdict(self.spec)}

    def load_windows(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return generate_synthetic_corpus(self.info.channel_names, self.spec)
