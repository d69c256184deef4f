"""Lightning-free model parts: encoder, projector, masking, aggregator."""

from .aggregator import SimilarityAggregator
from .encoder import ClassifierHead, CNNEncoder, Projector
from .masking import HybridMasking, default_mask_num

__all__ = ["CNNEncoder", "ClassifierHead", "HybridMasking", "Projector", "SimilarityAggregator", "default_mask_num"]
