"""What every window datamodule does once its corpus is in memory: select, split, normalise, serve.

:class:`WindowDataModule` declares and documents the arguments every corpus shares, once; a leaf
datamodule declares only its own and passes the rest through ``**kwargs`` (jsonargparse follows
the pass-through, so ``--help`` and ``--print_config`` list every option).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from ..corpora import CorpusError, CorpusInfo, Normalization, SplitConfig, normalize, select_channels
from ..field_types import check_arguments, init_hints
from .dataset import WindowDataset, make_loader, training_loader


class WindowDataModule(L.LightningDataModule):
    """Base of the corpus datamodules.

    Leaves implement :attr:`info` (name, electrodes, classes: known before any file is read, so the
    CLI can link the montage into the model), :attr:`num_bands` and :meth:`load_windows`. After
    ``setup``: ``train_set`` and ``test_set`` (None when the split has no test part), normalised
    with statistics of the training split only (or per subject with ``subject_*``).

    Args:
        subjects: subject ids to keep (default all).
        sessions: session ids to keep (default all).
        channels: electrode names to keep, in this order (e.g. DEAP's 32 on a SEED source); default all.
        label_map: own class index -> new index; unmapped classes are dropped.
        split: train/test split (default: none, everything trains).
        normalization: ``minmax`` / ``zscore`` (training split only), ``subject_minmax`` /
            ``subject_zscore`` (per subject, labels unused) or ``none``.
        batch_size: training batch size (originals per step).
        num_workers: DataLoader workers.
        shuffle_seed: seed of the epoch-wise training order.
    """

    def __init__(
        self,
        subjects: list[int] | None = None,
        sessions: list[int] | None = None,
        channels: list[str] | None = None,
        label_map: dict[int, int] | None = None,
        split: SplitConfig | None = None,
        normalization: Normalization = "minmax",
        batch_size: int = 256,
        num_workers: int = 0,
        shuffle_seed: int = 0,
    ) -> None:
        super().__init__()
        # before any file is read: normalization="z-score" used to fail only at setup, after the cache
        check_arguments(locals(), init_hints(WindowDataModule, WindowDataModule), "data.init_args", type(self).__name__)
        self.subjects = subjects
        self.sessions = sessions
        self.channels = list(channels) if channels else None
        self.label_map = {int(k): int(v) for k, v in label_map.items()} if label_map else None
        self.split = split or SplitConfig(kind="none")
        self.normalization = normalization
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.shuffle_seed = shuffle_seed
        self.train_set: WindowDataset | None = None
        self.test_set: WindowDataset | None = None
        self.normalization_statistics: tuple[np.ndarray, np.ndarray] | None = None

    def check_own_arguments(self, given: dict[str, Any], leaf: type) -> None:
        """A leaf's own arguments (its ``locals()`` at the top of its ``__init__``) checked against the
        annotations of ``leaf``'s ``__init__``, as the shared ones are above: before any file is read
        (``SeedDataModule(source="Raw")`` failed only at setup, when the reader was built, and
        ``SyntheticEEGDataModule(num_classes=2.5)`` deep in the generator)."""
        check_arguments(given, init_hints(leaf, leaf), "data.init_args", type(self).__name__)

    # -- the corpus contract: known before setup, so the CLI can link them into the model ----------
    @property
    def info(self) -> CorpusInfo:
        raise NotImplementedError

    @property
    def num_bands(self) -> int:
        raise NotImplementedError

    def load_windows(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """All windows of the corpus: features (N, C_all, F) and metadata arrays."""
        raise NotImplementedError

    @property
    def corpus_name(self) -> str:
        return self.info.title

    @property
    def channel_names(self) -> tuple[str, ...]:
        return tuple(self.channels) if self.channels else tuple(self.info.channel_names)

    @property
    def num_channels(self) -> int:
        return len(self.channel_names)

    @property
    def num_classes(self) -> int:
        return len(set(self.label_map.values())) if self.label_map else len(self.info.class_names)

    @property
    def class_names(self) -> tuple[str, ...]:
        """Names of the classes after ``label_map`` (merged classes joined by '+')."""
        own = self.info.class_names
        if not self.label_map:
            return tuple(own)
        names: dict[int, list[str]] = {}
        for old, new in sorted(self.label_map.items()):
            names.setdefault(new, []).append(own[old])
        return tuple("+".join(names[k]) for k in sorted(names))

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        features, meta = self.load_windows()
        self.check_selection(meta)
        keep = np.ones(len(features), dtype=bool)
        if self.subjects is not None:
            keep &= np.isin(meta["subject"], self.subjects)
        if self.sessions is not None:
            keep &= np.isin(meta["session"], self.sessions)
        labels = np.asarray(meta["label"]).copy()
        if self.label_map is not None:
            unknown = set(self.label_map) - set(range(len(self.info.class_names)))
            targets = sorted(set(self.label_map.values()))
            if targets != list(range(len(targets))):
                raise CorpusError(
                    f"label_map {self.label_map}: the new class ids must be 0..{len(targets) - 1} with no gap "
                    f"({len(targets)} classes), got {targets}; renumber the values"
                )
            if unknown:
                raise CorpusError(
                    f"label_map keys {sorted(unknown)} are not {self.corpus_name} classes "
                    f"{dict(enumerate(self.info.class_names))}"
                )
            keep &= np.isin(labels, list(self.label_map))
            labels = np.array([self.label_map.get(int(v), -1) for v in labels], dtype=np.int64)
        if not keep.any():
            raise CorpusError(
                f"no {self.corpus_name} windows left after selecting subjects={self.subjects}, "
                f"sessions={self.sessions}, label_map={self.label_map}"
            )
        features = features[keep]
        meta = {k: np.asarray(v)[keep] for k, v in meta.items()}
        meta["label"] = labels[keep]
        if self.channels:
            features = features[:, select_channels(self.info.channel_names, self.channels)]
        train, test = self.split.masks(meta)
        if not train.any():
            raise CorpusError(
                f"{self.corpus_name}: split {self.split.kind!r} leaves no training windows ({self.split}); give "
                "split fewer test trials/subjects"
            )
        features, self.normalization_statistics = normalize(features, meta["subject"], train, self.normalization)
        self.train_set = WindowDataset(features[train], {k: v[train] for k, v in meta.items()})
        self.test_set = WindowDataset(features[test], {k: v[test] for k, v in meta.items()}) if test.any() else None

    def feature_description(self) -> dict[str, Any]:
        """How this corpus's windows were made (leaves say: bands, window, smoothing, source files)."""
        return {}

    def input_description(self) -> dict[str, Any]:
        """What an encoder pre-trained on this corpus expects, in plain JSON types: electrodes in order,
        bands, how the features were made, the normalisation and its statistics (``None`` for the
        per-subject kinds), and the training split's size. Recorded in every checkpoint of a fit and
        exported with the encoder (``python -m scmm_lightning export``); call after ``setup``."""
        stats = self.normalization_statistics
        meta = self.train_set.meta if self.train_set is not None else None
        subjects = sessions = None
        if meta is not None:  # unique over tensors: SEED's ~760k windows take milliseconds, every checkpoint
            subjects = len(torch.unique(meta["subject"]))
            sessions = len(torch.unique(torch.stack([meta["subject"], meta["session"]]), dim=1).T)
        return {
            "corpus": self.corpus_name,
            "electrodes": list(self.channel_names),
            "num_bands": int(self.num_bands),
            "features": self.feature_description(),
            "normalization": {
                "kind": self.normalization,
                "shift": stats[0].tolist() if stats is not None else None,
                "scale": stats[1].tolist() if stats is not None else None,
            },
            "subjects": subjects,
            "sessions": sessions,
            "windows": len(self.train_set) if self.train_set is not None else None,
        }

    def check_selection(self, meta: dict[str, np.ndarray]) -> None:
        """Every requested subject, and every requested session of every selected subject, must be
        in the corpus: a selection that silently selects less would change the experiment."""
        subject, session = np.asarray(meta["subject"]), np.asarray(meta["session"])
        present = set(zip(subject.tolist(), session.tolist()))
        subjects = sorted(set(subject.tolist())) if self.subjects is None else list(self.subjects)
        missing_subjects = [s for s in subjects if s not in set(subject.tolist())]
        if missing_subjects:
            raise CorpusError(
                f"{self.corpus_name}: subjects {missing_subjects} requested (data subjects) are not in the corpus, "
                f"which has {sorted(set(subject.tolist()))}"
            )
        wanted = set(self.sessions or [])
        if self.split.kind == "cross_session":
            wanted |= set(self.split.train_sessions) | set(self.split.test_sessions)
        gaps = [(s, e) for s in subjects for e in sorted(wanted) if (s, e) not in present]
        if gaps:
            raise CorpusError(
                f"{self.corpus_name}: (subject, session) pairs {gaps[:20]} requested (data sessions / split sessions) "
                "are not in the corpus; check the corpus tree (prepare warns about missing files) or select fewer"
            )

    def check_batch_size(self) -> None:
        """Pre-training needs one whole batch of training windows (called at setup by a cross-corpus
        pair for its source, so the error comes before the model summary)."""
        if self.train_set is not None and len(self.train_set) < self.batch_size:
            raise CorpusError(
                f"the {self.corpus_name} training split has {len(self.train_set)} training windows, fewer than "
                f"batch_size={self.batch_size}; lower data batch_size"
            )

    def train_dataloader(self) -> DataLoader:
        owner = f"the {self.corpus_name} training split"
        return training_loader(self.train_set, self.batch_size, self.num_workers, self.shuffle_seed, owner)

    def test_dataloader(self) -> DataLoader:
        if self.test_set is None:
            raise ValueError(f"the {self.corpus_name} split {self.split.kind!r} has no test windows")
        return make_loader(self.test_set, self.batch_size, False, False, self.num_workers, 0)
