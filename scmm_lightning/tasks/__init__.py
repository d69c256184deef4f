"""LightningModules: SCMM and the baselines, all sharing PretrainingTask."""

from .base import PretrainingTask
from .baselines import HardContrastivePretraining, MaskedReconstructionPretraining, NoPretraining
from .scmm import SCMMPretraining

__all__ = [
    "HardContrastivePretraining",
    "MaskedReconstructionPretraining",
    "NoPretraining",
    "PretrainingTask",
    "SCMMPretraining",
]
