"""Lightning-free losses."""

from .hard_contrastive import HardContrastiveLoss
from .soft_contrastive import SoftContrastiveLoss, similarity_matrix, soft_weights
from .uncertainty import UncertaintyWeighting

__all__ = ["HardContrastiveLoss", "SoftContrastiveLoss", "UncertaintyWeighting", "similarity_matrix", "soft_weights"]
