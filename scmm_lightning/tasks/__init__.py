"""LightningModules: SCMM and the baselines, all sharing PretrainingTask."""

from .base import ContrastivePretrainingTask, MaskedPretrainingTask, PretrainingTask
from .baselines import HardContrastivePretraining, MaskedReconstructionPretraining, NoPretraining
from .scmm import SCMMPretraining

__all__ = [
    "ContrastivePretrainingTask",
    "HardContrastivePretraining",
    "MaskedPretrainingTask",
    "MaskedReconstructionPretraining",
    "NoPretraining",
    "PretrainingTask",
    "SCMMPretraining",
]
