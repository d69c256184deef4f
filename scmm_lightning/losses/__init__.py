"""Lightning-free losses."""

from .soft_contrastive import SoftContrastiveLoss, similarity_matrix, soft_weights
from .uncertainty import UncertaintyWeighting

__all__ = ["SoftContrastiveLoss", "UncertaintyWeighting", "similarity_matrix", "soft_weights"]
