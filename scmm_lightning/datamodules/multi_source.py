"""Several pre-training corpora on one montage, served as one training set."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from ..corpora import canonical
from ..field_types import check_arguments, init_hints
from .base import WindowDataModule
from .dataset import WindowDataset, training_loader


class MultiSourceDataModule(L.LightningDataModule):
    """Pre-train on the union of several corpora (labels unused): e.g. SEED + SEED-IV on SEED's 62
    electrodes, or several recordings folders, in one run; usable alone or as the ``source`` of a
    :class:`CrossCorpusDataModule`.

    Each source keeps its own configuration (subjects, sessions, electrodes, split, normalisation:
    ``subject_zscore`` on every source puts them on one scale); their training splits are
    concatenated. They must end up with the same electrodes in the same order (set ``channels`` on
    each) and the same bands. Subjects are renumbered so that no two sources share an id: subject s
    of source k (0-based) becomes ``k * subject_stride + s`` (sessions, trials and windows keep
    theirs), so per-subject and per-recording quantities (e.g. ``soft_weights_from: time``) never
    mix corpora. Labels are set to -1: they mean different things in different corpora, and
    pre-training must not use them.

    Args:
        sources: the datamodules to pre-train on, two or more.
        batch_size: training batch size (originals per step).
        num_workers: DataLoader workers.
        shuffle_seed: seed of the epoch-wise training order.
        subject_stride: subject id offset per source; must exceed every source's largest subject id.
    """

    def __init__(
        self,
        sources: list[WindowDataModule],
        batch_size: int = 256,
        num_workers: int = 0,
        shuffle_seed: int = 0,
        subject_stride: int = 1000,
    ) -> None:
        super().__init__()
        check_arguments(
            locals(),
            init_hints(MultiSourceDataModule, MultiSourceDataModule),
            "data.init_args",
            "MultiSourceDataModule",
        )
        if len(sources) < 2:
            raise ValueError(
                f"data.sources: give two or more datamodules (got {len(sources)}); for one, use it directly"
            )
        first = [canonical(n) for n in sources[0].channel_names]
        for k, src in enumerate(sources[1:], start=1):
            names = [canonical(n) for n in src.channel_names]
            if names != first:
                raise ValueError(
                    f"data.sources[{k}] ({src.corpus_name}) has electrodes {names}, data.sources[0] "
                    f"({sources[0].corpus_name}) {first}: set the same `channels` list on every source"
                )
            if src.num_bands != sources[0].num_bands:
                raise ValueError(
                    f"data.sources[{k}] ({src.corpus_name}) has {src.num_bands} bands, data.sources[0] "
                    f"{sources[0].num_bands}: use the same bands"
                )
        self.sources = list(sources)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.shuffle_seed = shuffle_seed
        self.subject_stride = subject_stride
        self.train_set: WindowDataset | None = None

    @property
    def corpus_name(self) -> str:
        return " + ".join(s.corpus_name for s in self.sources)

    @property
    def channel_names(self) -> tuple[str, ...]:
        return self.sources[0].channel_names

    @property
    def num_channels(self) -> int:
        return self.sources[0].num_channels

    @property
    def num_bands(self) -> int:
        return self.sources[0].num_bands

    def input_description(self) -> dict:
        """Electrodes and bands shared by every source; each source's own description under
        ``sources``. The normalisation has no single set of statistics (each source fits its own), so
        its ``shift`` / ``scale`` are ``None``: a user of the encoder fits them on their own windows."""
        sources = [s.input_description() for s in self.sources]
        kinds = {s["normalization"]["kind"] for s in sources}
        return {
            "corpus": self.corpus_name,
            "electrodes": list(self.channel_names),
            "num_bands": int(self.num_bands),
            "features": sources[0]["features"],
            "normalization": {"kind": kinds.pop() if len(kinds) == 1 else "per source", "shift": None, "scale": None},
            "subjects": sum(s["subjects"] or 0 for s in sources),
            "sessions": sum(s["sessions"] or 0 for s in sources),
            "windows": sum(s["windows"] or 0 for s in sources),
            "sources": sources,
        }

    def prepare_data(self) -> None:
        for src in self.sources:
            src.prepare_data()

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        xs, metas = [], []
        for k, src in enumerate(self.sources):
            src.setup(stage)
            part = src.train_set
            top = int(part.meta["subject"].max())
            if top >= self.subject_stride:
                raise ValueError(
                    f"data.sources[{k}] ({src.corpus_name}) has subject id {top} >= data.subject_stride="
                    f"{self.subject_stride}; raise data.subject_stride"
                )
            meta = {key: value.clone() for key, value in part.meta.items()}
            meta["subject"] += k * self.subject_stride
            meta["label"] = torch.full_like(meta["label"], -1)
            xs.append(part.x)
            metas.append(meta)
        features = torch.cat(xs).numpy()
        meta = {key: np.concatenate([m[key].numpy() for m in metas]) for key in metas[0]}
        self.train_set = WindowDataset(features, meta)

    def train_dataloader(self) -> DataLoader:
        owner = f"the sources {self.corpus_name} together"
        return training_loader(self.train_set, self.batch_size, self.num_workers, self.shuffle_seed, owner)
