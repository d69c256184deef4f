"""The cross-corpus evaluation of one encoder, with or without a Trainer: which corpus is the
target, the controls (random-init encoder, raw input features), the probe summary, and the
fine-tuning protocol with its result files. Every function here runs on every DDP rank (the jobs
are spread over the ranks); files are written and printed on rank 0 only."""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L
import numpy as np
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from ..distributed import world
from ..seeding import run_seed, seeded
from .finetune import FinetuneConfig
from .probe import L2_GRID, FlattenFeatures
from .protocol import run_protocol
from .results import COMPARED, comparison_pairs, console_table, rows_from, summary, write_results
from .statistics import compare_methods

NO_TARGET_NOTICE = (
    "{who}: the datamodule has no test split (e.g. split.kind none), so this run pre-trains only and the "
    "target-corpus evaluation is skipped; to evaluate, use scmm_lightning.datamodules.CrossCorpusDataModule or "
    "set data split.kind (trial/loso/cross_session/leave_subjects_out)"
)


def has_evaluation_target(datamodule: L.LightningDataModule | None, who: str) -> bool:
    """Whether the datamodule offers a corpus to evaluate on; if not, one notice (rank 0) that
    ``who`` is skipped in this pre-training-only run. Callbacks call it at the start of fit."""
    if evaluation_target(datamodule, required=False) is not None:
        return True
    rank_zero_warn(NO_TARGET_NOTICE.format(who=who))
    return False


def evaluation_target(datamodule: L.LightningDataModule | None, required: bool = True):
    """The corpus to evaluate on: a CrossCorpusDataModule's target, else the datamodule itself
    when its split has a test part; without one, an error (or ``None`` when not ``required``)."""
    target = getattr(datamodule, "target", datamodule)
    if target is None or getattr(target, "test_set", None) is None:
        split = getattr(target, "split", None)
        if split is not None and getattr(split, "kind", "none") != "none" and getattr(target, "train_set", None):
            # a split meant to test that tests nothing: say so (not "use a split", which is in use)
            from ..corpora import CorpusError

            raise CorpusError(
                f"the target split ({split.kind}: {split}) leaves no test windows: every trial fine-tunes; give the "
                "target split test trials (e.g. split.test_trials_per_class: 2, fewer split.train_trials, or "
                "test_subjects)"
            )
        if not required:
            return None
        raise ValueError(
            "target-corpus evaluation needs a datamodule with a test split: use "
            "scmm_lightning.datamodules.CrossCorpusDataModule (target with split.kind trial/loso/cross_session/"
            "leave_subjects_out) or set data split.kind on a single corpus"
        )
    return target


def random_encoder(pl_module: L.LightningModule, seed: int) -> nn.Module:
    """A freshly initialised encoder of the module's architecture (the random-init control)."""
    with seeded(seed):
        encoder = pl_module.build_encoder()
    return encoder.to(pl_module.device)


def evaluated_encoders(pl_module: L.LightningModule, controls: bool = True) -> dict[str, nn.Module]:
    """``pretrained`` (the module's encoder) and, with ``controls``, ``random_init`` and
    ``raw_features`` (the normalised inputs, flattened)."""
    encoders = {"pretrained": pl_module.encoder}
    if controls:
        encoders["random_init"] = random_encoder(pl_module, run_seed() + 1)
        hp = pl_module.hparams
        encoders["raw_features"] = FlattenFeatures(hp.num_channels, hp.num_bands).to(pl_module.device)
    return encoders


def probe_summary(
    encoders: dict[str, nn.Module],
    target,  # noqa: ANN001
    config: FinetuneConfig,
    l2_grid: tuple[float, ...] = L2_GRID,
    balanced: bool = False,
    per_subject: bool = True,
    progress: bool = False,
) -> dict[str, float]:
    """Linear probe of each encoder on the target (L2 chosen on validation): means over target
    subjects of test accuracy, balanced accuracy, macro-F1 and validation balanced accuracy, keyed
    ``acc_mean`` ... for ``pretrained`` and ``<method>_acc_mean`` ... for the others."""
    res = run_protocol(
        encoders, target.train_set, target.test_set, target.num_classes, config, run_seed(), ("probe",),
        l2_grid=l2_grid, balanced_probe=balanced, progress=progress,
    )["probe"]  # fmt: skip
    out = {}
    for name, per_subject_metrics in res.items():
        prefix = "" if name == "pretrained" else f"{name}_"
        values = list(per_subject_metrics.values())
        for key, metric in (("acc", "accuracy"), ("bacc", "balanced_accuracy"), ("f1", "macro_f1")):
            out[f"{prefix}{key}_mean"] = float(np.mean([r[metric] for r in values]))
        out[f"{prefix}val_bacc_mean"] = float(np.mean([r["val_balanced_accuracy"] for r in values]))
        if per_subject and name == "pretrained":
            out.update({f"acc_subject{s}": r["accuracy"] for s, r in per_subject_metrics.items()})
    return out


def finetune_vs_probe(rows: list[dict]) -> list[dict]:
    """Per method, its fine-tuned figures against its own probe's (same encoder, same trials),
    paired over target subjects: a = ``<method>``, b = ``<method> probe``, so the mean difference is
    fine-tune - probe ("did fine-tuning help?")."""
    probe_rows = [
        {"method": f"{r['method']} probe", "subject": r["subject"], "accuracy": r.get("probe_accuracy"),
         "balanced_accuracy": r.get("probe_balanced_accuracy")}
        for r in rows if r.get("probe_balanced_accuracy") is not None
    ]  # fmt: skip
    methods = list(dict.fromkeys(r["method"] for r in rows))
    return compare_methods(rows + probe_rows, [(m, f"{m} probe") for m in methods], COMPARED)


def run_transfer(
    pl_module: L.LightningModule,
    target,  # noqa: ANN001
    out_dir: str | Path | None,
    config: FinetuneConfig,
    compare_controls: bool = True,
    subjects: list[int] | None = None,
    logger=None,  # noqa: ANN001
    progress: bool = True,
    l2_grid: tuple[float, ...] = L2_GRID,
    balanced: bool = False,
) -> list[dict]:
    """Probe and fine-tune ``pl_module.encoder`` (and the controls) per target subject on every
    rank's share of the jobs (each row carries its probe's figures beside the fine-tuned ones, and
    the comparisons gain fine-tune - probe per method; ``balanced``: class-balanced probes, and LP-FT
    on their objective); on rank 0 write ``transfer_results.{csv,md,png}`` and
    ``transfer_results_summary.json`` (with the paired comparisons and the wall time) into
    ``out_dir``, log the means (test and validation figures) and print the table. Returns the rows."""
    started = time.perf_counter()
    encoders = evaluated_encoders(pl_module, compare_controls)
    results = run_protocol(
        encoders, target.train_set, target.test_set, target.num_classes, config, run_seed(), ("probe", "finetune"),
        subjects=subjects, progress=progress, l2_grid=l2_grid, balanced_probe=balanced,
    )["finetune"]  # fmt: skip
    rows = rows_from(results)
    wall = time.perf_counter() - started
    if world()[0] != 0:
        return rows
    comparisons = compare_methods(rows, comparison_pairs(rows), COMPARED) + finetune_vs_probe(rows)
    confusion = sum(r["confusion"] for r in results["pretrained"].values())
    title = f"{getattr(target, 'corpus_name', 'target')} transfer"
    paths = write_results(
        out_dir, rows, confusion, list(target.class_names), title, comparisons=comparisons, wall_seconds=wall
    )
    if logger is not None:
        flat = {
            f"transfer/{m}/{k}_{p}": v[i]
            for m, s in summary(rows).items()
            for k, v in s.items()
            for i, p in enumerate(("mean", "std"))
        }
        logger.log_metrics(flat)
        if hasattr(logger, "log_table"):
            cols = list(rows[0])
            logger.log_table(key="transfer/results", columns=cols, data=[[r[c] for c in cols] for r in rows])
        if hasattr(logger, "log_image"):
            logger.log_image(key="transfer/figure", images=[str(paths["png"])])
    print(
        "\n"
        + console_table(rows, title, comparisons)
        + f"\nevaluation wall time: {wall:.1f} s\nresults: {paths['md']}",
        flush=True,
    )
    return rows
