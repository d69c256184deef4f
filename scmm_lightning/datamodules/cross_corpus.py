"""A source corpus for pre-training and a target corpus for evaluation, on one montage."""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader

from ..corpora import CorpusError, canonical
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

    @property
    def num_channels(self) -> int:
        return self.source.num_channels

    @property
    def num_bands(self) -> int:
        return self.source.num_bands

    @property
    def channel_names(self) -> tuple[str, ...]:
        return self.source.channel_names

    def check_montages(self) -> None:
        """Source and target on one montage and one band set, else one error naming both options.
        Checked at setup, not at construction: an error raised while the command line is parsed
        comes out as a parser dump of every union member tried (76 lines)."""
        source, target = self.source, self.target
        src = [canonical(n) for n in source.channel_names]
        tgt = [canonical(n) for n in target.channel_names]
        if src != tgt:
            only_src = [n for n in src if n not in tgt][:6]
            only_tgt = [n for n in tgt if n not in src][:6]
            raise CorpusError(
                f"source ({source.corpus_name}, {len(src)} electrodes) and target ({target.corpus_name}, {len(tgt)}) "
                f"montages differ (source only: {only_src}, target only: {only_tgt}{', or another order' if not only_src and not only_tgt else ''}); "
                "set the same `channels` list on both (data.init_args.source.init_args.channels and "
                "data.init_args.target.init_args.channels, e.g. DEAP's 32 electrodes)"
            )
        if source.num_bands != target.num_bands:
            raise CorpusError(f"source has {source.num_bands} bands, target {target.num_bands}; use the same bands")

    def input_description(self) -> dict:
        """The source's (what the encoder is pre-trained on), naming the evaluation target."""
        return {**self.source.input_description(), "target": self.target.corpus_name}

    def prepare_data(self) -> None:
        self.source.prepare_data()
        self.target.prepare_data()

    def setup(self, stage: str | None = None) -> None:
        self.source.setup(stage)  # a bad electrode name is reported by the corpus that has it first
        self.target.setup(stage)
        self.check_montages()
        if hasattr(self.source, "check_batch_size"):
            self.source.check_batch_size()

    def train_dataloader(self) -> DataLoader:
        return self.source.train_dataloader()
