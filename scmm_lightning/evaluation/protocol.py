"""The evaluation protocol over a target corpus: which windows fit, validate and test each model
(per subject, or once across subjects), and the probe and fine-tuning jobs of every method, spread
over the DDP ranks and gathered, so W processes take about 1/W of the time with the same results."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..datamodules import WindowDataset
from ..distributed import gather_objects, world
from ..seeding import subject_seed
from .batched import FinetuneJob, finetune_batched
from .finetune import FinetuneConfig, finetune, fit_summary, split_finetune_validation
from .metrics import classification_metrics
from .probe import L2_GRID, embed, module_device, select_and_fit_probes


@dataclass
class Part:
    """One model's data: rows of the train set that fit (``fit``) and validate (``val``), rows of
    the test set it is scored on, and ``key`` (the subject, or 0 for one cross-subject model whose
    test rows are reported per subject)."""

    key: int
    fit: Tensor
    val: Tensor
    test: Tensor
    cross_subject: bool = False


def is_cross_subject(train: WindowDataset, test: WindowDataset) -> bool:
    """True when no subject has windows on both sides (leave-subjects-out splits)."""
    return set(train.meta["subject"].tolist()).isdisjoint(test.meta["subject"].tolist())


def protocol_parts(
    train: WindowDataset, test: WindowDataset, config: FinetuneConfig, subjects: list[int] | None = None
) -> list[Part]:
    """Within-subject: per subject on both sides (or ``subjects``), validation = the latest
    fine-tuning trial(s) of every class. Cross-subject: one part, validation = the last
    ``config.val_subjects`` training subjects (or those listed)."""
    if is_cross_subject(train, test):
        train_subjects = sorted(set(train.meta["subject"].tolist()))
        chosen = config.val_subjects
        if isinstance(chosen, int):
            val_ids = train_subjects[max(len(train_subjects) - chosen, 0) :] if chosen > 0 else []
        else:
            val_ids = sorted(set(chosen))
        missing = [s for s in val_ids if s not in train_subjects]
        if missing or not val_ids or len(val_ids) >= len(train_subjects):
            why = f"not training subjects: {missing}" if missing else f"{len(val_ids)} validating"
            raise ValueError(
                f"val_subjects={chosen}: give 1 to {len(train_subjects) - 1} of the training subjects {train_subjects} "
                f"(a count, or their ids), leaving at least one to fine-tune on ({why})"
            )
        val = torch.isin(train.meta["subject"], torch.tensor(val_ids))
        te = torch.ones(len(test), dtype=torch.bool)
        if subjects is not None:
            te = torch.isin(test.meta["subject"], torch.tensor(subjects))
        return [Part(0, ~val, val, te, cross_subject=True)]
    both = sorted(set(train.meta["subject"].tolist()) & set(test.meta["subject"].tolist()))
    parts = []
    for subject in subjects if subjects is not None else both:
        tr = train.meta["subject"] == subject
        fit, val = split_finetune_validation(
            {k: v[tr] for k, v in train.meta.items()}, config.val_trials_per_class, subject
        )
        fit_rows, val_rows = torch.zeros_like(tr), torch.zeros_like(tr)
        fit_rows[tr], val_rows[tr] = fit, val
        parts.append(Part(subject, fit_rows, val_rows, test.meta["subject"] == subject))
    return parts


def _model_seed(seed: int, method_index: int, part: Part) -> int:
    """A fine-tuning model's seed: from the run seed, the method's position and the subject only."""
    return subject_seed(subject_seed(seed, 0, method_index), part.key, 1 if part.cross_subject else 0)


_SCORES = ("accuracy", "balanced_accuracy", "macro_f1", "auroc", "confusion", "test_classes")


def _scored(logits: Tensor, y: Tensor, groups: Tensor | None, num_classes: int) -> dict:
    metrics = classification_metrics(logits, y, num_classes)
    if groups is not None:
        metrics["groups"] = {
            int(g): classification_metrics(logits[groups == g], y[groups == g], num_classes)
            for g in torch.unique(groups).tolist()
        }
    return metrics


def run_protocol(
    encoders: dict[str, nn.Module],
    train: WindowDataset,
    test: WindowDataset,
    num_classes: int,
    config: FinetuneConfig,
    seed: int,
    kinds: tuple[str, ...] = ("finetune",),
    subjects: list[int] | None = None,
    l2_grid: tuple[float, ...] = L2_GRID,
    balanced_probe: bool = False,
    progress: bool = False,
) -> dict[str, dict[str, dict[int, dict]]]:
    """``{kind: {method: {subject: metrics}}}`` for ``kind`` in ``probe`` / ``finetune``.

    Every (kind, method, part) is one job; job ``j`` runs on rank ``j mod W`` and the results are
    gathered on every rank (call it on all ranks or on none). Each model's seed depends only on the
    method's position, the subject and ``seed``: the same on any number of ranks.
    """
    parts = protocol_parts(train, test, config, subjects)
    jobs = [(kind, k, name, part) for kind in kinds for k, name in enumerate(encoders) for part in parts]
    rank, size = world()
    mine = jobs[rank::size]
    bar = None
    if progress and rank == 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), desc=f"evaluation ({size} process{'es' if size > 1 else ''})", unit="model")
    done = []
    y, test_y = train.meta["label"], test.meta["label"]
    devices = {module_device(e).type for e in encoders.values()}
    if config.engine == "batched" or (config.engine == "auto" and devices != {"cpu"}):
        # this rank's fine-tuning jobs trained together
        tuned = [job for job in mine if job[0] == "finetune"]
        stacked = finetune_batched(
            [
                FinetuneJob(
                    encoders[name], _model_seed(seed, k, part), part.fit.nonzero().squeeze(1),
                    part.val.nonzero().squeeze(1), part.test.nonzero().squeeze(1),
                    test.meta["subject"][part.test] if part.cross_subject else None,
                )
                for _, k, name, part in tuned
            ],
            (train.x, y), (test.x, test_y), num_classes, config,
        )  # fmt: skip
        for (kind, _, name, part), metrics in zip(tuned, stacked):
            metrics.pop("history")
            metrics.update(n_finetune=int(part.fit.sum()), n_val=int(part.val.sum()))
            done.append((kind, name, part.key, metrics))
        if bar is not None:
            bar.update(size * len(tuned))
        mine = [job for job in mine if job[0] != "finetune"]
    probed: dict[str, list] = {}
    for job in mine:
        if job[0] == "probe":
            probed.setdefault(job[2], []).append(job)
    for name, probe_jobs in probed.items():  # per encoder: every part x every L2 value solved together
        h, h_test = embed(encoders[name], train.x), embed(encoders[name], test.x)
        tasks = [
            (h[part.fit | part.val], y[part.fit | part.val], part.val[part.fit | part.val]) for *_, part in probe_jobs
        ]
        fitted = select_and_fit_probes(tasks, num_classes, l2_grid, balanced_probe, batched=config.engine != "loop")
        for (kind, _, _, part), (probe, l2, val_bacc) in zip(probe_jobs, fitted):
            groups = test.meta["subject"][part.test] if part.cross_subject else None
            metrics = _scored(probe(h_test[part.test]), test_y[part.test], groups, num_classes)
            metrics.update(fit_summary(probe(h[part.fit | part.val]), y[part.fit | part.val], num_classes))
            metrics.update(
                l2=l2, val_balanced_accuracy=val_bacc, n_finetune=int(part.fit.sum()), n_val=int(part.val.sum())
            )
            done.append((kind, name, part.key, metrics))
        if bar is not None:
            bar.update(size * len(probe_jobs))
    mine = [job for job in mine if job[0] != "probe"]
    for kind, k, name, part in mine:  # the per-model fine-tuning loop (engine: loop)
        groups = test.meta["subject"][part.test] if part.cross_subject else None
        metrics = finetune(
            encoders[name],
            num_classes,
            (train.x[part.fit], y[part.fit]),
            (train.x[part.val], y[part.val]),
            (test.x[part.test], test_y[part.test]),
            config,
            _model_seed(seed, k, part),
            test_groups=groups,
        )
        metrics.pop("history")
        metrics.update(n_finetune=int(part.fit.sum()), n_val=int(part.val.sum()))
        done.append((kind, name, part.key, metrics))
        if bar is not None:
            bar.update(size)  # every rank advances at the same pace
    if bar is not None:
        bar.n = len(jobs)
        bar.close()
    results: dict[str, dict[str, dict[int, dict]]] = {kind: {name: {} for name in encoders} for kind in kinds}
    for kind, name, key, metrics in (item for rank_items in gather_objects(done) for item in rank_items):
        per_group = metrics.pop("groups", None)
        if per_group is None:
            metrics["n_test"] = int((test.meta["subject"] == key).sum())
            results[kind][name][key] = metrics
        else:
            shared = {m: v for m, v in metrics.items() if m not in _SCORES}
            for subject, group_metrics in per_group.items():
                n_test = int((test.meta["subject"] == subject).sum())
                results[kind][name][subject] = {**group_metrics, **shared, "n_test": n_test}
    for kind in results:
        for name in results[kind]:
            results[kind][name] = dict(sorted(results[kind][name].items()))
    warn_missing_test_classes(results, num_classes)
    warn_unfitted(results)
    return results


def warn_unfitted(results: dict) -> None:
    """One warning naming the rows whose model, at its selected epoch, does not beat the majority
    class on its own training rows: training balanced accuracy at or below chance, which is what
    predicting one class scores (it learnt nothing it could show: under-trained, or a budget too
    small for the data; its test figure says nothing about its encoder)."""
    rows = [
        f"{kind}/{name}/subject {subject} ({m['train_balanced_accuracy']:.3f})"
        for kind, per_method in results.items()
        for name, per_subject in per_method.items()
        for subject, m in per_subject.items()
        if "train_balanced_accuracy" in m and m["train_balanced_accuracy"] <= m["train_chance"] + 1e-9
    ]
    if rows and world()[0] == 0:
        warnings.warn(
            f"{len(rows)} row(s) do not beat the majority class on their own training data (training balanced "
            f"accuracy at chance): {', '.join(rows[:12])}{' ...' if len(rows) > 12 else ''}. Raise the fine-tuning "
            "budget (epochs, lr) or check the data",
            stacklevel=3,
        )


def warn_missing_test_classes(results: dict, num_classes: int) -> None:
    """One warning naming the target subjects whose test part lacks a class of the target (their
    balanced accuracy and macro-F1 average over the classes present only; a table scored on fewer
    classes than it names says less than it seems)."""
    missing = {}
    for per_method in results.values():
        for per_subject in per_method.values():
            for subject, metrics in per_subject.items():
                present = {int(c) for c in str(metrics.get("test_classes", "")).split(";") if c != ""}
                lacking = sorted(set(range(num_classes)) - present)
                if lacking:
                    missing[subject] = lacking
            break  # every row scores the same test parts
        break
    if missing and world()[0] == 0:
        listed = ", ".join(f"subject {s}: {c}" for s, c in sorted(missing.items()))
        warnings.warn(
            f"test parts lack target classes (class ids; metrics there average over the classes present, column "
            f"test_classes): {listed}. Use a target split that tests every class (e.g. split.test_trials_per_class)",
            stacklevel=3,
        )


def linear_probe(
    encoder: nn.Module,
    train: WindowDataset,
    test: WindowDataset,
    num_classes: int,
    l2: float | tuple[float, ...] = L2_GRID,
    balanced: bool = False,
    config: FinetuneConfig | None = None,
) -> dict[int, dict]:
    """The probe protocol for one encoder: ``{subject: metrics}`` (``l2``: one value, or a grid to
    choose from on validation)."""
    grid = (float(l2),) if isinstance(l2, (int, float)) else tuple(l2)
    res = run_protocol(
        {"encoder": encoder}, train, test, num_classes, config or FinetuneConfig(), 0, ("probe",),
        l2_grid=grid, balanced_probe=balanced,
    )  # fmt: skip
    return res["probe"]["encoder"]


def finetune_protocol(
    encoder: nn.Module,
    train: WindowDataset,
    test: WindowDataset,
    num_classes: int,
    config: FinetuneConfig,
    seed: int,
    subjects: list[int] | None = None,
) -> dict[int, dict]:
    """The fine-tuning protocol for one encoder: ``{subject: metrics}``."""
    return run_protocol({"encoder": encoder}, train, test, num_classes, config, seed, ("finetune",), subjects)[
        "finetune"
    ]["encoder"]
