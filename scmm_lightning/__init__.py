"""scmm_lightning: Soft Contrastive Masked Modeling (SCMM) for cross-corpus EEG emotion recognition."""

__version__ = "0.1.0"


def __getattr__(name: str):  # noqa: ANN202
    # `scmm_lightning.load_encoder(folder)`, imported on first use: `import scmm_lightning` stays cheap and
    # loading an exported encoder never imports Lightning (scmm_lightning.model.pretrained)
    if name in ("load_encoder", "PretrainedEncoder"):
        from .model import pretrained

        return getattr(pretrained, name)
    raise AttributeError(f"module 'scmm_lightning' has no attribute {name!r}")
