"""scmm_lightning: Soft Contrastive Masked Modeling (SCMM) for cross-corpus EEG emotion recognition."""

__version__ = "0.1.0"
