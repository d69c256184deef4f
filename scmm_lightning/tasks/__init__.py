"""LightningModules."""

from .scmm import SCMMPretraining

__all__ = ["SCMMPretraining"]
