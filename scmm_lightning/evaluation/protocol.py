"""The evaluation protocol over a target corpus: which windows fit, validate and test each model
(per subject, or once across subjects), and the probe and fine-tuning jobs of every method, spread
over the DDP ranks and gathered, so W processes take about 1/W of the time with the same results."""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from ..allocator import keep_freed_memory
from ..datamodules import WindowDataset
from ..distributed import gather_objects, world
from ..seeding import subject_seed
from .batched import FinetuneJob, finetune_batched
from .finetune import (
    FinetuneConfig,
    balanced_selection_gap,
    finetune,
    fit_summary,
    random_choice_gap,
    split_finetune_validation,
)
from .metrics import classification_metrics, improves, present_class_balanced_accuracy
from .probe import L2_GRID, SelectedProbe, embed, module_device, select_and_fit_probes


@contextlib.contextmanager
def ieee_float32() -> Iterator[None]:
    """Inside the block, float32 convolutions and matrix products round as IEEE float32 on every
    backend, whatever the run asked for; on exit the run's settings are as they were.

    Why: cuDNN convolves float32 in TF32 (10-bit mantissa) unless told otherwise
    (``torch.backends.cudnn.conv.fp32_precision`` is ``tf32`` by default), and a run that follows
    Lightning's advice, ``torch.set_float32_matmul_precision("high" | "medium")``, multiplies in TF32
    on a GPU and, with ``medium``, in bfloat16 on a CPU with oneDNN's bf16 kernels. The loop engine
    convolves with ``F.conv1d`` while the batched engine's convolutions are matrix products, so the two
    would be compared at different precisions: on a lent H200 (session 28) the LP-FT protocol's
    engines disagreed in 3 rows beyond the tolerance and 4 flipped windows; on the CPU, rounding
    ``F.conv1d``'s operands to TF32 gave differences of that kind and size (subject 6's validation
    score exactly as on the H200, 0.977778 vs 0.975; its 4 flipped rows among 7), where without it the
    engines agree. Nor should a GPU's evaluation differ from a CPU's by more than float32 summation
    order.

    Each setting goes through the API the run's state can be read with: torch's cuBLAS check raises
    when the legacy setting (``set_float32_matmul_precision``) and the newer per-backend one
    (``torch.backends.cuda.matmul.fp32_precision``, torch >= 2.9) disagree, and so does the legacy
    ``torch.backends.cudnn.allow_tf32`` getter when cuDNN's convolution and RNN settings and its flag
    do; so the legacy one is set wherever the run's state has a legacy name, and the per-backend ones
    are made to agree with it."""
    cudnn = torch.backends.cudnn
    # cuDNN's per-operator settings (torch >= 2.9; before it, only the legacy flag)
    per_op = [b for b in (getattr(cudnn, "conv", None), getattr(cudnn, "rnn", None))
              if hasattr(b, "fp32_precision")]  # fmt: skip
    products = [b for b in (torch.backends.cuda.matmul, getattr(torch.backends.mkldnn, "matmul", None))
                if hasattr(b, "fp32_precision")]  # fmt: skip
    saved = [(b, b.fp32_precision) for b in per_op + products]
    cudnn_tf32 = _legacy(lambda: cudnn.allow_tf32)
    matmul = _legacy(torch.get_float32_matmul_precision)
    try:
        # the legacy flag off and every cuDNN operator IEEE: consistent, so the legacy getter still
        # reads (torch.backends.cudnn.flags() and compilers read it); left alone where it raises already
        if cudnn_tf32 is not None:
            cudnn.allow_tf32 = False
        for backend in per_op:
            backend.fp32_precision = "ieee"
        if matmul is None:
            for backend in products:
                backend.fp32_precision = "ieee"
        elif matmul != "highest":
            torch.set_float32_matmul_precision("highest")
        yield
    finally:
        if cudnn_tf32 is not None:
            cudnn.allow_tf32 = cudnn_tf32
        if matmul not in (None, "highest"):
            torch.set_float32_matmul_precision(matmul)
        for backend, value in saved:  # after the legacy setters, which write these too
            backend.fp32_precision = value


def _legacy(read: Callable[[], object]) -> object | None:
    """A legacy precision getter's value, ``None`` where the run set the per-backend settings
    (torch >= 2.9) to a state the legacy API has no name for (the getter raises)."""
    try:
        return read()
    except RuntimeError:
        return None


@dataclass
class Part:
    """One model's data: rows of the train set that fit (``fit``) and validate (``val``) it, rows of
    the test set it is scored on, ``key`` (the subject, or 0 for one cross-subject model whose test
    rows are reported per subject) and ``folds``, the (fit, validation) row masks that choose the
    probe's L2 and the fine-tuning checkpoint: one hold-out (``fit``, ``val``), or K
    cross-validation folds of every fine-tuning row (then ``val`` is empty and the reported model
    is refitted on ``fit``, every fine-tuning row). ``probe_folds``: the folds that choose the
    probe's L2 where they differ from ``folds`` (``selection: cv_probe``: K folds over ``fit`` and
    ``val`` for the probe, the hold-out for the checkpoint)."""

    key: int
    fit: Tensor
    val: Tensor
    test: Tensor
    cross_subject: bool = False
    folds: list[tuple[Tensor, Tensor]] = field(default_factory=list)
    probe_folds: list[tuple[Tensor, Tensor]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.folds:
            self.folds = [(self.fit, self.val)]
        if not self.probe_folds:
            self.probe_folds = self.folds


def is_cross_subject(train: WindowDataset, test: WindowDataset) -> bool:
    """True when no subject has windows on both sides (leave-subjects-out splits)."""
    return set(train.meta["subject"].tolist()).isdisjoint(test.meta["subject"].tolist())


def _holdout_parts(
    train: WindowDataset, test: WindowDataset, config: FinetuneConfig, subjects: list[int] | None
) -> list[Part]:
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


def cross_validation_folds(meta: dict[str, Tensor], rows: Tensor, folds: int, cross_subject: bool, key: int = 0):
    """K (fit, validation) row masks over ``rows`` (a boolean mask of the train set), grouped so no
    trial (within-subject) or subject (cross-subject) is on both sides of a fold.

    Within-subject: per session and class, trials sorted by id; fold f validates the trial at
    position n - 1 - f (mod n) of every class (fold 0 the latest trial of each class, fold 1 the one
    before, ...), the rest fit; K = min(``folds``, the most trials any class has). A class with one
    trial cannot both fit and validate: an error names the subject. Cross-subject: the training
    subjects, sorted, dealt over K = min(``folds``, subjects) folds (subject i validates in fold
    i mod K)."""
    if folds < 2:
        raise ValueError(f"finetune.folds={folds}: cross-validation needs 2 or more folds (or set selection: holdout)")
    subject, session, trial, label = (meta[k] for k in ("subject", "session", "trial", "label"))
    if cross_subject:
        ids = sorted(set(subject[rows].tolist()))
        if len(ids) < 2:
            raise ValueError(f"cross-validation over subjects needs 2 or more training subjects, got {ids}")
        k = min(folds, len(ids))
        out = []
        for f in range(k):
            val = rows & torch.isin(subject, torch.tensor(ids[f::k]))
            out.append((rows & ~val, val))
        return out
    groups = []  # per (session, class): its trials in order
    short = []
    for s in torch.unique(session[rows]).tolist():
        for c in torch.unique(label[rows & (session == s)]).tolist():
            trials = torch.unique(trial[rows & (session == s) & (label == c)])
            if len(trials) < 2:
                short.append((s, c))
            groups.append((s, trials))
    if short:
        raise ValueError(
            f"subject {key}: (session, class) {short} have one fine-tuning trial; cross-validation needs two per class "
            "(give this subject more fine-tuning trials with the target split, or set finetune.selection: holdout)"
        )
    k = min(folds, max(len(t) for _, t in groups))
    out = []
    for f in range(k):
        val = torch.zeros_like(rows)
        for s, trials in groups:
            pick = trials[(len(trials) - 1 - f) % len(trials)]
            val |= rows & (session == s) & (trial == pick)
        out.append((rows & ~val, val))
    return out


def protocol_parts(
    train: WindowDataset, test: WindowDataset, config: FinetuneConfig, subjects: list[int] | None = None
) -> list[Part]:
    """Within-subject: a part per subject on both sides (or ``subjects``); cross-subject: one part.
    ``selection: holdout``: validation = the latest ``val_trials_per_class`` fine-tuning trial(s) of
    every class (cross-subject: the last ``val_subjects`` training subjects, or those listed);
    ``cv``: ``folds`` cross-validation folds over every fine-tuning row
    (:func:`cross_validation_folds`; ``fixed``: the same, the folds choosing the probe's L2 and
    validating the whole budget, no checkpoint);
    ``cv_probe``: the hold-out's parts, with those folds for the probe (``Part.probe_folds``)."""
    if config.selection == "holdout":
        return _holdout_parts(train, test, config, subjects)
    if config.selection == "cv_probe":
        parts = _holdout_parts(train, test, config, subjects)
        for part in parts:
            rows = part.fit | part.val
            part.probe_folds = cross_validation_folds(train.meta, rows, config.folds, part.cross_subject, part.key)
        return parts
    cross = is_cross_subject(train, test)
    if cross:
        te = torch.ones(len(test), dtype=torch.bool)
        if subjects is not None:
            te = torch.isin(test.meta["subject"], torch.tensor(subjects))
        rows = torch.ones(len(train), dtype=torch.bool)
        keyed = [(0, rows, te)]
    else:
        both = sorted(set(train.meta["subject"].tolist()) & set(test.meta["subject"].tolist()))
        keyed = [
            (s, train.meta["subject"] == s, test.meta["subject"] == s)
            for s in (subjects if subjects is not None else both)
        ]
    return [
        Part(
            key,
            rows,
            torch.zeros_like(rows),
            te,
            cross,
            cross_validation_folds(train.meta, rows, config.folds, cross, key),
        )
        for key, rows, te in keyed
    ]


def _model_seed(seed: int, part: Part) -> int:
    """A fine-tuning model's seed: from the run seed and the part (subject) only, the same for every
    method of the table (the seeds the first row always had). So a row's figures do not depend on
    which other rows run beside it, and the rows share their draws (common random numbers: the
    same batch order, the same fresh head where the shapes agree); on eegmat that did not narrow
    the paired comparisons measurably (README "Rows"). Until session 32 the seed also took the
    method's position in the table, so the same untrained encoder fine-tuned 2 points apart in two
    tables (benchmarks/REAL_EEG_HISTORY.md, "Under `lpft/cv`")."""
    return subject_seed(subject_seed(seed, 0, 0), part.key, 1 if part.cross_subject else 0)


def _fold_seed(model_seed: int, fold: int) -> int:
    return subject_seed(model_seed, fold + 1, 3)


_SCORES = ("accuracy", "balanced_accuracy", "macro_f1", "auroc", "confusion", "test_classes")


def _train_models(
    specs: list[FinetuneJob],
    train: WindowDataset,
    test: WindowDataset,
    num_classes: int,
    config: FinetuneConfig,
    keep_states: bool = False,
) -> list[dict]:
    """Train every model: stacked (``finetune_batched``) when the engine says so, else one after
    another (``finetune``); ``keep_states``: with every checkpoint's weights."""
    if not specs:
        return []
    y, test_y = train.meta["label"], test.meta["label"]
    if config.engine in ("batched", "auto"):
        return finetune_batched(specs, (train.x, y), (test.x, test_y), num_classes, config, keep_states=keep_states)
    return [
        finetune(
            m.encoder,
            num_classes,
            (train.x[m.fit], y[m.fit]),
            (train.x[m.val], y[m.val]),
            (test.x[m.test], test_y[m.test]),
            config,
            m.seed,
            test_groups=m.groups,
            head=m.head,
            select_at=m.select_at,
            keep_states=keep_states,
            head_penalty=m.head_penalty,
        )  # fmt: skip
        for m in specs
    ]


def _ensemble_metrics(
    fold_results: list[dict],
    chosen: int,
    rows: tuple[Tensor, Tensor],
    test_rows: tuple[Tensor, Tensor],
    groups: Tensor | None,
    num_classes: int,
    config: FinetuneConfig,
) -> dict:
    """The cross-validation ensemble at checkpoint ``chosen``: the K fold models' mean softmax on the
    test rows (its log as the logits), its fit on every fine-tuning row, and the optimistic column
    (best test accuracy of the ensemble over checkpoints)."""

    def log_mean_softmax(checkpoint: int, x: Tensor) -> Tensor:
        total = torch.zeros(len(x), num_classes)
        for r in fold_results:
            model = r["module"]
            model.load_state_dict(r["history"]["states"][checkpoint])
            model.eval()
            device = module_device(model)
            with torch.no_grad():
                total += torch.cat(
                    [model(x[i : i + 1024].to(device)).float().softmax(1).cpu() for i in range(0, len(x), 1024)]
                    or [torch.zeros(0, num_classes)]
                )
        return (total / len(fold_results)).clamp_min(1e-12).log()

    (x, y), (test_x, test_y) = rows, test_rows
    n = min(len(r["history"]["states"]) for r in fold_results)
    per_checkpoint = [log_mean_softmax(c, test_x) for c in range(n)]
    curve = [(logits.argmax(1) == test_y).float().mean().item() for logits in per_checkpoint]
    balanced_curve = [
        present_class_balanced_accuracy(logits, test_y) if len(test_y) else float("nan") for logits in per_checkpoint
    ]
    logits = per_checkpoint[chosen]
    metrics = classification_metrics(logits, test_y, num_classes)
    metrics.update(fit_summary(log_mean_softmax(chosen, x), y, num_classes))
    if groups is not None:
        metrics["groups"] = {
            int(g): classification_metrics(logits[groups == g], test_y[groups == g], num_classes)
            for g in torch.unique(groups).tolist()
        }
    lpft = config.recipe == "lpft"
    metrics.update(
        best_epoch=None if lpft else chosen,
        best_step=config.checkpoints()[chosen] if lpft else None,
        optimistic_best_test_acc=max(curve) if curve else float("nan"),
        balanced_selection_gap=balanced_selection_gap(balanced_curve, chosen),
        random_choice_gap=random_choice_gap(balanced_curve),
        history={"test_bacc": balanced_curve},
    )
    return metrics


def _cv_choice(fold_results: list[dict], at: int | None = None) -> tuple[int, dict[str, float]]:
    """The checkpoint with the best mean validation balanced accuracy over folds (ties, within
    ``metrics.TIE``: lower mean validation loss, then the earlier checkpoint), or checkpoint index
    ``at`` (``selection: fixed``: the last), and the mean validation figures there (rounded to 9
    decimals, as reported)."""
    n = min(len(r["history"]["val_bacc"]) for r in fold_results)
    mean = {
        key: [round(float(np.mean([r["history"][key][c] for r in fold_results])), 9) for c in range(n)]
        for key in ("val_bacc", "val_acc", "val_loss")
    }
    best = at
    if best is None:  # as each engine keeps its checkpoint: a later one replaces it only if it improves on it
        best = 0
        for c in range(1, n):
            if improves((mean["val_bacc"][c], mean["val_loss"][c]), (mean["val_bacc"][best], mean["val_loss"][best])):
                best = c
    return best, {
        "val_balanced_accuracy": mean["val_bacc"][best],
        "val_acc": mean["val_acc"][best],
        "val_loss": mean["val_loss"][best],
    }


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
    curves: bool = False,
) -> dict[str, dict[str, dict[int, dict]]]:
    """``{kind: {method: {subject: metrics}}}`` for ``kind`` in ``probe`` / ``finetune``.

    Every (method, part) is one job (its probe, its fold models and its reported model); job ``j``
    runs on rank ``j mod W`` and the results are gathered on every rank (call it on all ranks or on
    none). Each model's seed depends only on the subject, the fold and ``seed`` (not on the
    method: common random numbers across the rows, :func:`_model_seed`): the same on any number of
    ranks. When both kinds run, each fine-tuning row also
    carries its own probe's figures (``probe_accuracy``, ``probe_balanced_accuracy``).

    ``curves`` (a diagnostic of the selection, ``benchmarks/real_eeg.py --curves``): each fine-tuning
    row also carries ``curves``, per checkpoint: ``fold_val_bacc``, the validation balanced accuracy
    that chose the checkpoint (cross-validation: the mean over the fold models; hold-out: the one
    model's); ``fold_test_bacc``, the same models' test balanced accuracy on the row's test part
    (cross-validation: the fold models are then also scored on it, for this diagnostic only: they
    train the same, and only the batched engine's validation loss, which breaks exact ties, can move
    in the eighth digit, its validation and test rows sharing one forward); ``test_bacc``, the
    reported model's (the refit, the fold models' ensemble or the hold-out model). Where the fold
    models' test curve follows their validation curve but the refit's does not, the refit is what the
    choice misses; where neither test curve follows the validation curve, the validation rows are.
    """
    with ieee_float32():  # the engines compared, and any device's figures, at IEEE float32 (its docstring)
        keep_freed_memory()  # the engines' megabyte tensors recycled, not re-faulted at every step (allocator.py)
        if config.class_balanced_loss is None:  # LP-FT fine-tunes on its probe's objective (FinetuneConfig)
            config = dataclasses.replace(config, class_balanced_loss=balanced_probe and config.recipe == "lpft")
        parts = protocol_parts(train, test, config, subjects)
        jobs = [(name, part) for name in encoders for part in parts]
        rank, size = world()
        mine = jobs[rank::size]
        bar = None
        if progress and rank == 0:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(jobs) * len(kinds), desc=f"evaluation ({size} process{'es' if size > 1 else ''})",
                       unit="model")  # fmt: skip
        done = []
        y, test_y = train.meta["label"], test.meta["label"]
        tuned = "finetune" in kinds
        selected: dict[tuple[str, int], SelectedProbe] = {}
        if "probe" in kinds or (tuned and config.recipe == "lpft"):
            for name in dict.fromkeys(name for name, _ in mine):  # per encoder: every part x fold x L2 together
                probe_parts = [part for n, part in mine if n == name]
                h = embed(encoders[name], train.x)
                tasks = []
                for part in probe_parts:
                    rows = part.fit | part.val
                    tasks.append((h[rows], y[rows], [val[rows] for _, val in part.probe_folds]))
                # cv_probe's LP-FT head: the chosen L2 fitted on the hold-out's fine-tuning rows
                lpft_holdout_heads = tuned and config.recipe == "lpft" and config.selection == "cv_probe"
                heads = [p.fit[p.fit | p.val] for p in probe_parts] if lpft_holdout_heads else None
                fitted = select_and_fit_probes(
                    tasks,
                    num_classes,
                    l2_grid,
                    balanced_probe,
                    batched=config.engine != "loop",
                    holdout_fits=heads,
                    fold_head_l2=config.fold_head_l2 if tuned and config.recipe == "lpft" else "shared",
                    device=module_device(encoders[name]),  # solved on the encoder's GPU (probe.solver_device)
                )
                h_test = embed(encoders[name], test.x) if "probe" in kinds else None
                for part, sel in zip(probe_parts, fitted):
                    selected[(name, part.key)] = sel
                    if "probe" not in kinds:
                        continue
                    rows = part.fit | part.val
                    groups = test.meta["subject"][part.test] if part.cross_subject else None
                    metrics = _scored(sel.probe(h_test[part.test]), test_y[part.test], groups, num_classes)
                    metrics.update(fit_summary(sel.probe(h[rows]), y[rows], num_classes))
                    metrics.update(
                        l2=sel.l2, l2_at_edge=sel.at_edge, val_balanced_accuracy=sel.val_balanced_accuracy,
                        **_sizes(part, probe=True),
                    )  # fmt: skip
                    done.append(("probe", name, part.key, metrics))
                if bar is not None and "probe" in kinds:
                    bar.update(size * len(probe_parts))
        if tuned:
            lpft = config.recipe == "lpft"
            index = lambda mask: mask.nonzero().squeeze(1)  # noqa: E731
            empty = torch.zeros(0, dtype=torch.long)

            def head(name: str, part: Part, fold: int | None) -> dict:
                """A model's head (LP-FT: its probe, as an ``nn.Linear``) and, with ``head_l2: probe``,
                that probe's penalty: ``FinetuneJob``'s ``head`` and ``head_penalty``."""
                if not lpft:
                    return {}
                sel = selected[(name, part.key)]
                if config.selection == "cv_probe":
                    probe = sel.holdout_probe
                else:
                    probe = sel.probe if fold is None else sel.fold_heads[fold]
                penalty = probe.head_penalty() if config.head_l2 == "probe" else None
                return {"head": probe.as_linear(), "head_penalty": penalty}

            # ``fixed``: the fold models train the whole budget (no patience) and are read at its last checkpoint
            fold_select_at = len(config.checkpoints()) - 1 if config.selection == "fixed" else None

            def fold_models(name: str, part: Part) -> list[FinetuneJob]:
                model_seed = _model_seed(seed, part)
                scored = index(part.test) if curves else empty  # test rows only for the diagnostic curves
                return [
                    FinetuneJob(
                        encoders[name],
                        _fold_seed(model_seed, f),
                        index(fit),
                        index(val),
                        scored,
                        select_at=fold_select_at,
                        **head(name, part, f),
                    )
                    for f, (fit, val) in enumerate(part.folds)
                ]

            def fold_curves(results: list[dict]) -> dict[str, list[float]]:
                """The models' mean validation and test balanced accuracy per checkpoint (``curves``)."""
                n = min(len(r["history"]["val_bacc"]) for r in results)
                return {
                    f"fold_{key}": [float(np.mean([r["history"][key][c] for r in results])) for c in range(n)]
                    for key in ("val_bacc", "test_bacc")
                }

            finals = []
            if config.selection == "cv" and config.cv_model == "ensemble":
                # the loop: one job at a time (its fold models' checkpoints live until it is scored); the
                # stacked engine: every job's fold models together, every checkpoint's weights kept
                per_job = [fold_models(name, part) for name, part in mine]
                flat = None
                if config.engine != "loop":
                    flat = _train_models(
                        [f for specs in per_job for f in specs], train, test, num_classes, config, True
                    )
                for (name, part), specs in zip(mine, per_job):
                    if flat is None:
                        fold_results = _train_models(specs, train, test, num_classes, config, keep_states=True)
                    else:
                        fold_results, flat = flat[: len(specs)], flat[len(specs) :]
                    chosen, val_figures = _cv_choice(fold_results)
                    rows = part.fit | part.val
                    metrics = _ensemble_metrics(
                        fold_results, chosen, (train.x[rows], y[rows]), (test.x[part.test], test_y[part.test]),
                        test.meta["subject"][part.test] if part.cross_subject else None, num_classes, config,
                    )  # fmt: skip
                    finals.append(((name, part), metrics, val_figures, fold_curves(fold_results) if curves else None))
            else:
                first, owners = [], []
                for name, part in mine:
                    if config.selection in ("holdout", "cv_probe"):
                        ((fit, val),) = part.folds
                        groups = test.meta["subject"][part.test] if part.cross_subject else None
                        first.append(
                            FinetuneJob(encoders[name], _model_seed(seed, part), index(fit), index(val),
                                        index(part.test), groups, **head(name, part, 0))
                        )  # fmt: skip
                        owners.append((name, part))
                        continue
                    folds = fold_models(name, part)
                    first += folds
                    owners += [(name, part)] * len(folds)
                first_results = _train_models(first, train, test, num_classes, config)
                refits, refit_owners = [], []
                for name, part in mine:
                    mine_results = [r for (n2, p2), r in zip(owners, first_results) if n2 == name and p2 is part]
                    if config.selection in ("holdout", "cv_probe"):
                        finals.append(
                            ((name, part), mine_results[0], {}, fold_curves(mine_results) if curves else None)
                        )
                        continue
                    # ``fixed``: the whole budget, its last checkpoint; validated by the fold models there
                    chosen, val_figures = _cv_choice(mine_results, fold_select_at)
                    groups = test.meta["subject"][part.test] if part.cross_subject else None
                    refits.append(
                        FinetuneJob(encoders[name], _model_seed(seed, part), index(part.fit), empty, index(part.test),
                                    groups, select_at=chosen, **head(name, part, None))
                    )  # fmt: skip
                    refit_owners.append(((name, part), val_figures, fold_curves(mine_results) if curves else None))
                for (owner, val_figures, folds_seen), metrics in zip(
                    refit_owners, _train_models(refits, train, test, num_classes, config)
                ):
                    finals.append((owner, metrics, val_figures, folds_seen))
            for (name, part), metrics, val_figures, folds_seen in finals:
                history = metrics.pop("history", None)
                if folds_seen is not None:
                    metrics["curves"] = {**folds_seen, "test_bacc": [float(a) for a in history["test_bacc"]]}
                metrics.update(val_figures)
                metrics.update(_sizes(part))
                done.append(("finetune", name, part.key, metrics))
            if bar is not None:
                bar.update(size * len(mine))
        if bar is not None:
            bar.n = bar.total
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
        if "probe" in results and "finetune" in results:
            for name, per_subject in results["finetune"].items():
                for subject, metrics in per_subject.items():
                    probe = results["probe"][name].get(subject, {})
                    metrics["probe_accuracy"] = probe.get("accuracy")
                    metrics["probe_balanced_accuracy"] = probe.get("balanced_accuracy")
        warn_missing_test_classes(results, num_classes)
        warn_unfitted(results)
        warn_grid_edge(results, l2_grid)
        return results


def _sizes(part: Part, probe: bool = False) -> dict[str, int]:
    """Rows the reported model was fitted on, validation rows (per fold, rounded mean) and folds; of
    the probe row (``probe``): the probe is refitted on every fine-tuning row, chosen on its own
    folds (``Part.probe_folds``)."""
    folds = part.probe_folds if probe else part.folds
    n_val = round(float(np.mean([int(val.sum()) for _, val in folds])))
    fitted = part.fit | part.val if probe else part.fit
    return {"n_finetune": int(fitted.sum()), "n_val": n_val, "folds": len(folds)}


def _scored(logits: Tensor, y: Tensor, groups: Tensor | None, num_classes: int) -> dict:
    metrics = classification_metrics(logits, y, num_classes)
    if groups is not None:
        metrics["groups"] = {
            int(g): classification_metrics(logits[groups == g], y[groups == g], num_classes)
            for g in torch.unique(groups).tolist()
        }
    return metrics


def warn_grid_edge(results: dict, l2_grid: tuple[float, ...]) -> None:
    """One warning naming the probe rows whose L2 was chosen at an end of the grid (the optimum may
    lie beyond it: widen ``l2_grid``)."""
    rows = sorted(
        {
            f"{name}/subject {subject} (l2 {m['l2']:g})"
            for name, per_subject in results.get("probe", {}).items()
            for subject, m in per_subject.items()
            if m.get("l2_at_edge")
        }  # fmt: skip
    )
    if rows and world()[0] == 0:
        warnings.warn(
            f"{len(rows)} probe row(s) chose an L2 at an end of the grid {tuple(l2_grid)}: {', '.join(rows[:12])}"
            f"{' ...' if len(rows) > 12 else ''}; the optimum may lie beyond it: widen the grid (init_args.l2_grid of the "
            "LinearProbe / CrossCorpusTransfer callback)",
            stacklevel=3,
        )


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
