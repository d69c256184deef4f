"""A source corpus for pre-training and a target corpus for evaluation, on one montage."""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader

from ..corpora import canonical
from .base import WindowDataModule
from .multi_source import MultiSourceDataModule


class CrossCorpusDataModule(L.LightningDataModule):
    """Pre-train on ``source``; evaluate (linear probe, fine-tuning) on ``target``.

    Each keeps its own configuration: electrodes (both must end up with the same names in the same
    order, e.g. DEAP's 32), label mapping, split and normalisation fitted on its own training split.
    Training batches come from the source's training split.

    Args:
        source: datamodule of the pre-training corpus (labels unused), or a
            :class:`MultiSourceDataModule` of several.
        target: datamodule of the evaluation corpus; its split defines fine-tune / test trials.
    """

    def __init__(self, source: WindowDataModule | MultiSourceDataModule, target: WindowDataModule) -> None:
        super().__init__()
        self.source = source
        self.target = target
        src = [canonical(n) for n in source.channel_names]
        tgt = [canonical(n) for n in target.channel_names]
        if src != tgt:
            raise ValueError(
                f"source ({source.corpus_name}) and target ({target.corpus_name}) montages differ: "
                f"{src} vs {tgt}. Set the same `channels` list (e.g. DEAP's 32 electrodes) on both."
            )
        if source.num_bands != target.num_bands:
            raise ValueError(f"source has {source.num_bands} bands, target {target.num_bands}; use the same bands")

    @property
    def num_channels(self) -> int:
        return self.source.num_channels

    @property
    def num_bands(self) -> int:
        return self.source.num_bands

    @property
    def channel_names(self) -> tuple[str, ...]:
        return self.source.channel_names

    def prepare_data(self) -> None:
        self.source.prepare_data()
        self.target.prepare_data()

    def setup(self, stage: str | None = None) -> None:
        self.source.setup(stage)
        self.target.setup(stage)

    def train_dataloader(self) -> DataLoader:
        return self.source.train_dataloader()
