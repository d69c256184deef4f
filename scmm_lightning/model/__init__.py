"""Lightning-free model parts: encoder, projector, classifier head, masking, similarity, aggregator."""

from .aggregator import SimilarityAggregator
from .encoder import ClassifierHead, CNNEncoder, Projector
from .masking import Masking, MaskMode, default_mask_num
from .similarity import SELF_LOGIT, masked_logits, similarity_matrix

__all__ = [
    "SELF_LOGIT",
    "CNNEncoder",
    "ClassifierHead",
    "MaskMode",
    "Masking",
    "Projector",
    "SimilarityAggregator",
    "default_mask_num",
    "masked_logits",
    "similarity_matrix",
]
