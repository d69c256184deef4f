"""Settings built in Python (not through the command line, where jsonargparse checks them) refuse a
value their annotation does not allow, naming the setting: ``FinetuneConfig(recipe="LPFT")`` used to
run the reference recipe, ``cv_model="ensembel"`` to report the refit and ``engine="Loop"`` to use the
batched engine, all without a word."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

import numpy as np
import pytest

from scmm_lightning.corpora import SplitConfig
from scmm_lightning.corpora.de import RawDEConfig
from scmm_lightning.evaluation import FinetuneConfig

SETTINGS = [(FinetuneConfig, "finetune"), (SplitConfig, "split"), (RawDEConfig, "raw")]


def literal_fields(cls: type) -> list[tuple[str, tuple]]:
    """(field, its string choices) for every field whose annotation is or contains a Literal."""
    out = []
    for name, hint in typing.get_type_hints(cls).items():
        parts = (hint,) if typing.get_origin(hint) is typing.Literal else typing.get_args(hint)
        choices = [c for p in parts if typing.get_origin(p) is typing.Literal for c in typing.get_args(p)]
        if choices:
            out.append((name, tuple(choices)))
    return out


@pytest.mark.parametrize(("cls", "prefix"), SETTINGS, ids=lambda x: getattr(x, "__name__", x))
def test_the_defaults_fit_and_every_literal_setting_refuses_a_misspelt_choice(cls: type, prefix: str) -> None:
    cls()  # the defaults are values of their own annotations
    fields = literal_fields(cls)
    assert {FinetuneConfig: 8, SplitConfig: 1, RawDEConfig: 1}[cls] == len(fields), fields
    for name, choices in fields:
        for choice in choices:
            if isinstance(choice, str):
                cls(**{name: choice})  # every listed choice is accepted
        wrong = str(choices[0]).upper() + "x"
        with pytest.raises(ValueError, match=rf"^{prefix}\.{name}='{wrong}': expected .*{choices[0]!r}"):
            cls(**{name: wrong})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"recipe": "LPFT"}, "finetune.recipe='LPFT': expected one of 'lpft', 'reference'"),
        ({"cv_model": "ensembel"}, "finetune.cv_model='ensembel': expected one of 'refit', 'ensemble'"),
        ({"engine": "Loop"}, "finetune.engine='Loop': expected one of 'auto', 'batched', 'loop'"),
        ({"steps": "200"}, "finetune.steps='200': expected int (a value of type str)"),
        ({"steps": 200.0}, "finetune.steps=200.0: expected int"),
        ({"freeze_batchnorm": 1}, "finetune.freeze_batchnorm=1: expected bool"),
        ({"lr": "5e-4"}, "finetune.lr='5e-4': expected float"),
        ({"val_subjects": [1, "2"]}, "finetune.val_subjects=[1, '2']: expected int or list[int]"),
        ({"patience": True}, "finetune.patience=True: expected int or None"),
        ({"ema_decay": "none"}, "finetune.ema_decay='none': expected float or one of 'auto' or None"),
        ({"ema_decay": 1.0}, "finetune.ema_decay=1.0: must be 'auto', a number in [0, 1)"),
        ({"betas": (0.9,)}, "finetune.betas=(0.9,): expected tuple[float, float]"),
    ],
)
def test_a_finetune_setting_of_the_wrong_type_is_refused_by_name(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        FinetuneConfig(**kwargs)


def test_split_and_raw_settings_of_the_wrong_type_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"^split\.kind='losso': expected one of 'trial', 'loso'"):
        SplitConfig(kind="losso")
    with pytest.raises(ValueError, match=r"^split\.test_subjects=3: expected list\[int\] or None"):
        SplitConfig(kind="leave_subjects_out", test_subjects=3)
    with pytest.raises(ValueError, match=r"^raw\.bands=\(\(1, 4\), \(4, 8, 9\)\): expected tuple"):
        RawDEConfig(bands=((1, 4), (4, 8, 9)))
    with pytest.raises(ValueError, match=r"^raw\.window_seconds='1': expected float"):
        RawDEConfig(window_seconds="1")


def test_values_that_mean_what_the_annotation_says_are_accepted() -> None:
    """What callers pass in practice: numpy integers (subject ids from np.unique), an int where a
    float is meant, a list where a tuple is annotated (YAML has no tuples) and the reverse."""
    subjects = np.unique(np.array([3, 1, 3]))
    config = FinetuneConfig(val_subjects=list(subjects), lr=1, betas=[0.9, 0.99], patience=np.int64(5), ema_decay=0)
    assert config.val_subjects == [1, 3] and config.lr == 1
    FinetuneConfig(val_subjects=np.int64(2), ema_decay=None, class_balanced_loss=np.bool_(True))
    split = SplitConfig(kind="leave_subjects_out", test_subjects=(1, 2), train_sessions=[np.int32(1)])
    assert split.test_subjects == (1, 2)
    RawDEConfig(bands=[[1, 4], [4.0, 8.0]], window_seconds=2)
    # dataclasses.replace runs the same check
    with pytest.raises(ValueError, match=r"^finetune\.selection='cv_probes'"):
        dataclasses.replace(FinetuneConfig(), selection="cv_probes")


def test_a_task_refuses_an_argument_its_annotation_does_not_allow_by_name() -> None:
    """The tasks' arguments: ``reconstruction_target="masked"`` reconstructed the masked input (the
    reference implementation's defect) and ``similarity="cos"`` used dot products, silently; the
    ranges the CLI enforces (``mask_ratio`` in [0, 1), ``lr`` >= 0, ``temperature`` > 0) now hold in Python too."""
    from scmm_lightning.tasks import (
        HardContrastivePretraining,
        MaskedReconstructionPretraining,
        NoPretraining,
        SCMMPretraining,
    )

    for cls in (SCMMPretraining, HardContrastivePretraining, MaskedReconstructionPretraining, NoPretraining):
        cls(num_channels=np.int64(32))  # the defaults and a numpy int fit
    SCMMPretraining(lr=1, betas=[0.9, 0.99])  # an int for a float, a list for a tuple
    for kwargs, message in [
        ({"reconstruction_target": "masked"}, "reconstruction_target='masked': expected one of 'original'"),
        ({"similarity": "cos"}, "similarity='cos': expected one of 'dot', 'cosine'"),
        ({"mask_ratio": 1.0}, "mask_ratio=1.0: expected MaskRatio ([0, 1))"),
        ({"lr": -1}, "lr=-1: expected NonNegativeFloat"),
        ({"temperature": 0}, "temperature=0: expected PositiveFloat"),
        ({"num_channels": 32.0}, "num_channels=32.0: expected int"),
        ({"time_radius": -2}, "time_radius=-2: expected NonNegativeInt"),
    ]:
        with pytest.raises(ValueError, match=r"^model\.init_args\." + re.escape(message)):
            SCMMPretraining(**kwargs)


def test_a_subclass_whose_annotations_do_not_resolve_still_builds() -> None:
    """A user's task may annotate with a name imported only for type checkers: its own arguments go
    unchecked, the inherited ones are still checked."""
    from scmm_lightning.tasks import MaskedReconstructionPretraining

    class Mine(MaskedReconstructionPretraining):
        def __init__(self, extra: NotImportedHere = None, **kwargs) -> None:  # noqa: F821
            super().__init__(**kwargs)

    Mine(extra=object())
    with pytest.raises(ValueError, match=r"^model\.init_args\.mask_mode='chanel'"):
        Mine(mask_mode="chanel")


def test_the_evaluation_callbacks_refuse_an_argument_their_annotation_does_not_allow_by_name() -> None:
    """``LinearProbe(selection="cv_probe")`` reached FinetuneConfig, which allows it, though the probe
    offers cv and holdout only; ``CrossCorpusTransfer(finetune={...})`` failed later, elsewhere."""
    from scmm_lightning.callbacks import CrossCorpusTransfer, LinearProbe

    LinearProbe(l2_grid=[1e-3, 1], val_subjects=[np.int64(1), 2])  # a list for a tuple, numpy ids
    CrossCorpusTransfer(finetune=FinetuneConfig(steps=5), l2_grid=[0.1, 1], subjects=[1, 2])
    for build, message in [
        (lambda: LinearProbe(selection="cv_probe"), "LinearProbe.init_args.selection='cv_probe': expected one of 'cv', 'holdout'"),
        (lambda: LinearProbe(every_n_epochs=0.5), "LinearProbe.init_args.every_n_epochs=0.5: expected int"),
        (lambda: CrossCorpusTransfer(finetune={"steps": 5}), "CrossCorpusTransfer.init_args.finetune={'steps': 5}: expected FinetuneConfig or None"),
        (lambda: CrossCorpusTransfer(subjects=3), "CrossCorpusTransfer.init_args.subjects=3: expected list[int] or None"),
    ]:  # fmt: skip
        with pytest.raises(ValueError, match="^" + re.escape(message)):
            build()


def test_a_datamodule_refuses_a_shared_argument_of_the_wrong_type_before_reading_any_file() -> None:
    """``normalization="z-score"`` used to fail only at setup, after the corpus was read and cached."""
    from scmm_lightning.datamodules import DeapDataModule, SyntheticEEGDataModule

    DeapDataModule(root="/nonexistent", subjects=list(np.arange(1, 3)), channels=("FP1", "FP2"))  # nothing read yet
    for build, message in [
        (lambda: SyntheticEEGDataModule(normalization="z-score"), "data.init_args.normalization='z-score': expected one of 'minmax'"),
        (lambda: DeapDataModule(root="/nonexistent", subjects=1), "data.init_args.subjects=1: expected list[int] or None"),
        (lambda: SyntheticEEGDataModule(batch_size="64"), "data.init_args.batch_size='64': expected int"),
    ]:  # fmt: skip
        with pytest.raises(ValueError, match="^" + re.escape(message)):
            build()


def test_each_leaf_datamodule_refuses_its_own_argument_of_the_wrong_type_before_reading_any_file(
    tmp_path: Path,
) -> None:
    """A leaf's own arguments (source, label_dimension, num_classes, ...) were checked only when its
    reader was built at setup, or deep in the synthetic generator; now at construction, as the
    shared ones. Every leaf, with a wrong value of a kind its annotation names; then values that fit."""
    from scmm_lightning.datamodules import (
        BidsDataModule,
        DeapDataModule,
        MultiSourceDataModule,
        RecordingsDataModule,
        SeedDataModule,
        SeedIVDataModule,
        SyntheticEEGDataModule,
    )

    missing = str(tmp_path / "nonexistent")
    for build, message in [
        (lambda: SeedDataModule(root=missing, source="Raw"), "data.init_args.source='Raw': expected one of 'features', 'raw'"),
        (lambda: SeedIVDataModule(root=missing, feature_key=3), "data.init_args.feature_key=3: expected str"),
        (lambda: DeapDataModule(root=missing, label_dimension="Valence"), "data.init_args.label_dimension='Valence': expected one of 'valence'"),
        (lambda: DeapDataModule(root=missing, baseline="subtracted"), "data.init_args.baseline='subtracted': expected one of 'none', 'subtract'"),
        (lambda: DeapDataModule(root=missing, threshold="5"), "data.init_args.threshold='5': expected float"),
        (lambda: SyntheticEEGDataModule(num_classes=2.5), "data.init_args.num_classes=2.5: expected int"),
        (lambda: RecordingsDataModule(root=missing, resample="fast"), "data.init_args.resample='fast': expected float or None"),
        (lambda: RecordingsDataModule(root=missing, montage="Fz"), "data.init_args.montage='Fz': expected list[str] or None"),
        (lambda: BidsDataModule(root=missing, bids_subjects=[1, 2]), "data.init_args.bids_subjects=[1, 2]: expected list[str] or None"),
        (lambda: MultiSourceDataModule([SyntheticEEGDataModule(), SyntheticEEGDataModule(seed=1)], subject_stride=1e3), "data.init_args.subject_stride=1000.0: expected int"),
    ]:  # fmt: skip
        with pytest.raises(ValueError, match="^" + re.escape(message)):
            build()
    assert not Path(missing).exists()
    # values that mean what the annotations say (numpy ints, an int for a float, a tuple for a list, a Path root)
    SeedDataModule(root=Path(missing), source="raw")
    DeapDataModule(root=missing, label_dimension="arousal", threshold=5)
    SyntheticEEGDataModule(num_classes=np.int64(2), class_strength=1)
    RecordingsDataModule(root=missing, montage=("Fz", "Cz"), resample=256)
    BidsDataModule(root=missing, task="rest", bids_subjects=["01"])
    MultiSourceDataModule([SyntheticEEGDataModule(), SyntheticEEGDataModule(seed=1)], subject_stride=np.int32(500))
