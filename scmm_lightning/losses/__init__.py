"""Lightning-free losses (each a small module whose docstring gives its formula)."""

from .hard_contrastive import HardContrastiveLoss
from .soft_contrastive import SoftContrastiveLoss, soft_weights, time_weights
from .uncertainty import UncertaintyWeighting

__all__ = ["HardContrastiveLoss", "SoftContrastiveLoss", "UncertaintyWeighting", "soft_weights", "time_weights"]
