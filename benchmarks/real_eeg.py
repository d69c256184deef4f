"""Does pre-training pay off on real EEG? Every method under one cross-subject protocol.

    python benchmarks/real_eeg.py --root ../shared/data/eegmat [--seeds 3] [--methods scmm recommended ...]
        [--protocols lpft/fixed reference/holdout]

Reads a folder laid out like PhysioNet's "EEG During Mental Arithmetic Tasks" (``SubjectNN_1.edf``
rest, ``SubjectNN_2.edf`` task; any number of subjects) through the recordings reader (19 electrodes,
DE of 1 s windows, per-subject z-score). Cross-subject folds test every subject exactly once (about a
quarter of the subjects each). Per seed and fold, each method pre-trains on the fold's training
subjects only (labels unused), then the project's protocol runs on the held-out subjects: a linear
probe (class-balanced, L2 chosen on validation subjects) and fine-tuning (validated on them).
The validation subjects of fold k are the first ``--val_subjects`` (2) subjects of fold k + 1, so
they rotate (a fixed "last training subject" would be the same subject in most folds, and settings
chosen on it would be chosen on one person); they are left out of pre-training too, so they are as
unseen as a test subject and the validation columns rank methods as the test would. Controls: ``random_init`` (untrained encoder) and ``raw_features`` (the
inputs). A method is a config under experiments/methods/ (its model class and init_args).

Nested selection: the ``selected (nested)`` row scores each fold with the method chosen on that
fold's own validation subjects (best probe validation figure), so the subjects that judge a choice
are never the subjects that score it. Choosing once from validation figures pooled over folds (as
``recommended.yaml`` once was) is not nested: fold k validates on subjects that fold k + 1 tests.

Protocols (``--protocols``, each ``recipe/selection[/option=value...]``, options being
FinetuneConfig fields, e.g. ``lpft/cv/cv_model=ensemble``; every one runs on the same pre-trained
encoders): ``lpft/fixed`` (the shipped default: LP-FT from the probe, probe L2 chosen by 3-fold
cross-validation over the training subjects, then the whole 200-step budget on all of them, the last
checkpoint reported and the fold models' figure there its validation figure), ``lpft/cv`` (the
default until session 20: the checkpoint chosen by those folds too, then refitted) and
``reference/holdout`` (the
earlier protocol: fresh head, ``--finetune_epochs`` epochs, probe L2 and epoch chosen on the
rotating validation subjects). Per protocol: the probe and the fine-tuned figures, fine-tune -
probe, and the gap between the best test balanced accuracy over checkpoints and the selected
checkpoint's (what selection left on the table; a smaller gap is a better judge), the random-choice
gap (best minus the mean over checkpoints: what a checkpoint drawn at random leaves on average; a
selection gap above it means the validation figures did worse than chance at finding the checkpoints
that test well), and the selection gap in plain accuracy (eegmat's test parts are 75 % rest
windows, so the best-accuracy checkpoint can be one that calls everything rest). Each further
protocol is compared with the first, paired by seed: the ratio of the fine-tuned figures' spreads over seeds with the Pitman-Morgan p-value of equal variances
(``paired_spread_comparison``), and the selection gap's difference (bootstrap CI, Wilcoxon p): the
standard deviation of a handful of seeds is itself uncertain by about half its value.

``--curves`` also prints, per protocol and method, the mean per-checkpoint curves behind the choice
of checkpoint (``run_protocol(curves=True)``): the validation figure that chose it (cross-validation:
the fold models' mean), the same models scored on the test subjects (a diagnostic: it chooses
nothing), and the reported model's test figure, with how often each checkpoint was chosen. A
selection gap is then either the validation rows disagreeing with the test rows about the same
models, or the reported model (the refit) behaving unlike the models that chose.

Prints a table of balanced accuracy (probe and fine-tune; mean +/- std over seeds of the subject
means; validation figures beside them, the only ones to choose settings on), paired comparisons of
every method with ``random_init`` and ``raw_features`` over subject x seed, the diagnostics at the
end of pre-training, and as its LAST line one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import yaml

from scmm_lightning.callbacks import RepresentationDiagnostics
from scmm_lightning.cli.options import StrictArgumentParser
from scmm_lightning.corpora import SplitConfig, rotating_validation, subject_folds
from scmm_lightning.datamodules import RecordingsDataModule
from scmm_lightning.evaluation import (
    L2_GRID,
    FinetuneConfig,
    compare_methods,
    evaluated_encoders,
    paired_comparison,
    paired_spread_comparison,
    run_protocol,
)

ROOT = Path(__file__).resolve().parents[1]


def protocol_options(protocol: str) -> dict:
    """``lpft/cv/cv_model=ensemble/eval_every=40/ema_decay=0.95/freeze_batchnorm=false`` -> ``{"cv_model":
    "ensemble", "eval_every": 40, "ema_decay": 0.95, "freeze_batchnorm": False}``."""
    out = {}
    for part in protocol.split("/")[2:]:
        key, _, value = part.partition("=")
        if value.lower() in ("true", "false", "none", "null"):  # freeze_batchnorm=false, ema_decay=none
            out[key] = {"true": True, "false": False}.get(value.lower())
            continue
        try:
            out[key] = int(value) if value.lstrip("-").isdigit() else float(value)
        except ValueError:
            out[key] = value
    return out


SELECTIONS = ("cv", "holdout", "cv_probe", "fixed")


def protocol_config(spec: str, **budget: object) -> FinetuneConfig:
    """``recipe/selection[/field=value...]`` -> its FinetuneConfig (``budget``: fields set by the
    caller, e.g. ``epochs``; the spec's own fields win). A bad spec raises ValueError naming it, the
    part at fault and what that part may be."""
    parts = spec.split("/")
    if len(parts) < 2 or parts[0] not in ("lpft", "reference") or parts[1] not in SELECTIONS:
        raise ValueError(
            f"{spec!r}: must be recipe/selection[/field=value...], the recipe lpft or reference, the selection "
            f"one of {', '.join(SELECTIONS)} (e.g. lpft/fixed/ema_decay=none)"
        )
    # every field, recipe and selection too: the documented lpft/cv/selection=holdout is lpft/holdout
    fields = sorted(f.name for f in dataclasses.fields(FinetuneConfig))
    for part in parts[2:]:
        key, eq, _ = part.partition("=")
        if not eq or key not in fields:
            raise ValueError(f"{spec!r}: {part!r} is not field=value with a FinetuneConfig field ({', '.join(fields)})")
    try:
        return FinetuneConfig(**{"recipe": parts[0], "selection": parts[1], **budget, **protocol_options(spec)})
    except ValueError as err:
        raise ValueError(f"{spec!r}: {err}") from None


def protocol_spec(text: str) -> str:
    """``--protocols``' argparse type: a bad protocol fails before any data is read."""
    try:
        protocol_config(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


METHODS_DIR = ROOT / "experiments" / "methods"
DEFAULT_METHODS = ["scmm", "hard_contrastive", "masked_reconstruction", "recommended"]
CONTROLS = ["random_init", "raw_features"]
MONTAGE = [
    "FP1",
    "FP2",
    "F7",
    "F3",
    "FZ",
    "F4",
    "F8",
    "T7",
    "C3",
    "CZ",
    "C4",
    "T8",
    "P7",
    "P3",
    "PZ",
    "P4",
    "P8",
    "O1",
    "O2",
]


def write_table(root: Path, out: Path) -> list[int]:
    """The recordings table of an eegmat-like folder; returns the subject ids."""
    rows = ["file,subject,label"]
    subjects = []
    for rest in sorted(root.glob("Subject*_1.edf")):
        task = rest.with_name(rest.name.replace("_1.edf", "_2.edf"))
        if not task.is_file():
            continue
        subject = int(rest.name[len("Subject") : -len("_1.edf")]) + 1
        subjects.append(subject)
        rows += [f"{rest.name},{subject},rest", f"{task.name},{subject},task"]
    if len(subjects) < 4:
        raise SystemExit(f"{root}: found {len(subjects)} subjects with SubjectNN_1.edf and SubjectNN_2.edf; need 4+")
    out.write_text("\n".join(rows) + "\n")
    return subjects


SELECTED = "selected (nested)"


def nested_selection(rows: list[dict], methods: list[str]) -> dict[tuple[int, int], str]:
    """Per (seed, fold): the method with the best mean probe validation figure on THAT fold's
    validation subjects (ties: the earlier method). Those subjects are never that fold's test subjects,
    so the ``selected (nested)`` row (each fold scored with its own choice) is an honest estimate of
    choosing a method this way; pooling every fold's validation figures before choosing is not (fold
    k validates on subjects that fold k + 1 tests)."""
    choices = {}
    for seed, fold in sorted({(r["seed"], r["fold"]) for r in rows}):
        vals = {
            m: np.mean([r["probe_val_bacc"] for r in rows if (r["seed"], r["fold"], r["method"]) == (seed, fold, m)])
            for m in methods
        }
        choices[(seed, fold)] = max(methods, key=lambda m: (vals[m], -methods.index(m)))
    return choices


def mean_curves(models: list[dict]) -> dict:
    """The mean over models of each per-checkpoint curve, and how often each checkpoint was chosen."""
    n = min(len(m["test_bacc"]) for m in models)
    out = {key: [float(np.mean([m[key][c] for m in models])) for c in range(n)]
           for key in ("fold_val_bacc", "fold_test_bacc", "test_bacc")}  # fmt: skip
    out["chosen"] = np.bincount([m["chosen"] for m in models], minlength=n).tolist()
    return out


def print_curves(curves: dict[str, dict[str, list[dict]]]) -> None:
    """Per protocol and method, the mean curves over every (seed, fold) model: what chose the checkpoint
    (validation), the same models on the test subjects, the reported model on them, and the choices."""
    print("\nselection curves, per checkpoint, mean over every (seed, fold) model (balanced accuracy): validation = "
          "what chose (cross-validation: the fold models' mean); the same models' test = those models scored on the "
          "test subjects (diagnostic only); reported test = the reported model (refit / ensemble / hold-out model); "
          "chosen = how many models chose each checkpoint")  # fmt: skip
    for protocol, per_method in curves.items():
        for m, models in per_method.items():
            mean = mean_curves(models)
            print(f"  {protocol} / {m}:")
            for key, label in (("fold_val_bacc", "validation"), ("fold_test_bacc", "the same models' test"),
                               ("test_bacc", "reported test")):  # fmt: skip
                print(f"    {label:22s} " + " ".join(f"{v:.3f}" for v in mean[key]))
            print(f"    {'chosen':22s} " + " ".join(f"{v:5d}" for v in mean["chosen"]))


def method_name(text: str) -> str:
    """``--methods``' argparse type: a config under experiments/methods/."""
    if not (METHODS_DIR / f"{text}.yaml").is_file():
        known = ", ".join(sorted(p.stem for p in METHODS_DIR.glob("*.yaml")))
        raise argparse.ArgumentTypeError(f"{text!r}: no experiments/methods/{text}.yaml (methods: {known})")
    return text


def method_spec(name: str) -> tuple[type, dict]:
    spec = yaml.safe_load((METHODS_DIR / f"{name}.yaml").read_text())["model"]
    module, _, cls = spec["class_path"].rpartition(".")
    return getattr(importlib.import_module(module), cls), dict(spec.get("init_args") or {})


def main() -> None:
    p = StrictArgumentParser(description=__doc__)
    default = os.environ.get("SCMM_EEGMAT_DIR") or str(ROOT.parent / "shared" / "data" / "eegmat")
    p.add_argument("--root", default=default, help="folder of SubjectNN_1.edf / SubjectNN_2.edf (default: %(default)s)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--methods", nargs="+", type=method_name, default=DEFAULT_METHODS)
    p.add_argument("--folds", type=int, default=4)
    p.add_argument("--val_subjects", type=int, default=2, help="validation subjects per fold (from the next fold)")
    p.add_argument("--epochs", type=int, default=30, help="pre-training epochs")
    p.add_argument("--finetune_epochs", type=int, default=20, help="reference recipe: fine-tuning epochs")
    p.add_argument("--protocols", nargs="+", type=protocol_spec, default=["lpft/fixed", "reference/holdout"],
                   help="recipe/selection pairs, each run on the same encoders (the first is the main table)")  # fmt: skip
    p.add_argument("--cache_dir", default=None)
    p.add_argument("--l2_grid", nargs="+", type=float, default=list(L2_GRID),
                   help="the probe's L2 values (and LP-FT's starting head's; default: the shipped grid)")  # fmt: skip
    p.add_argument(
        "--curves", action="store_true",
        help="also print, per protocol and method, the mean per-checkpoint curves behind the selection: the "
             "validation figure that chose, the same (fold) models' test figure and the reported model's",
    )  # fmt: skip
    p.add_argument(
        "--validation_only", action="store_true",
        help="print only the validation columns (choose settings with this; the test figures stay unseen)",
    )  # fmt: skip
    args = p.parse_args()
    started = time.perf_counter()
    root = Path(args.root).expanduser()
    work = Path(tempfile.mkdtemp(prefix="real_eeg_"))
    table = work / "eegmat.csv"
    subjects = write_table(root, table)
    cache = args.cache_dir or str(work / "cache")
    folds = subject_folds(subjects, args.folds)
    validation = rotating_validation(folds, args.val_subjects)
    common = dict(root=str(root), table=str(table), name="eegmat", montage=MONTAGE, cache_dir=cache)
    rows: list[dict] = []
    curves: dict[str, dict[str, list[dict]]] = {p: {} for p in args.protocols}  # protocol -> method -> per model
    eval_seconds: dict[str, float] = {}
    diagnostics: dict[str, list[dict]] = {m: [] for m in args.methods}
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    for seed in range(args.seeds):
        for k, fold in enumerate(folds):
            train_subjects = [s for s in subjects if s not in fold]
            val_subjects = validation[k]
            pretrain_subjects = [s for s in train_subjects if s not in val_subjects]  # validation stays unseen
            configs = {
                protocol: protocol_config(
                    protocol,
                    epochs=args.finetune_epochs,
                    batch_size=128 if protocol.startswith("reference") else 64,
                    val_subjects=val_subjects,
                )
                for protocol in args.protocols
            }
            target = RecordingsDataModule(
                split=SplitConfig(kind="leave_subjects_out", test_subjects=fold),
                normalization="subject_zscore",
                **common,
            )
            target.setup("fit")
            encoders = {}
            for name in args.methods:
                cls, kwargs = method_spec(name)
                L.seed_everything(seed, verbose=False)
                source = RecordingsDataModule(
                    subjects=pretrain_subjects, normalization="subject_zscore", batch_size=256, **common
                )
                model = cls(num_channels=len(MONTAGE), num_bands=5, **kwargs)
                diag = RepresentationDiagnostics(every_n_epochs=max(1, args.epochs // 5), rows=256)
                trainer = L.Trainer(
                    max_epochs=args.epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                    enable_progress_bar=False, enable_model_summary=False, callbacks=[diag], default_root_dir=str(work),
                )  # fmt: skip
                t0 = time.perf_counter()
                trainer.fit(model, source)
                diagnostics[name].append({**diag.history[-1], "fit_seconds": time.perf_counter() - t0})
                encoders[name] = model.encoder
            L.seed_everything(seed, verbose=False)
            controls = evaluated_encoders(model)
            encoders.update({k: controls[k] for k in CONTROLS})
            by_protocol = {}
            for protocol, config in configs.items():
                t0 = time.perf_counter()
                by_protocol[protocol] = run_protocol(
                    encoders,
                    target.train_set,
                    target.test_set,
                    2,
                    config,
                    seed,
                    ("probe", "finetune"),
                    l2_grid=tuple(args.l2_grid),
                    balanced_probe=True,
                    curves=args.curves,
                )
                eval_seconds[protocol] = eval_seconds.get(protocol, 0.0) + time.perf_counter() - t0
            main_protocol = args.protocols[0]
            for protocol, res in by_protocol.items():  # one model per fold: its curves are on every subject's row
                for name, per_subject in res["finetune"].items():
                    first_row = next(iter(per_subject.values()))
                    if "curves" in first_row:
                        entry = {**first_row["curves"], "chosen": first_row["best_step"] // configs[protocol].eval_every
                                 if first_row["best_step"] is not None else first_row["best_epoch"]}  # fmt: skip
                        curves[protocol].setdefault(name, []).append(entry)
            for name in encoders:
                for subject in by_protocol[main_protocol]["probe"][name]:
                    row = {"method": name, "seed": seed, "fold": k, "subject": subject}
                    for protocol, res in by_protocol.items():
                        probe, tune = res["probe"][name][subject], res["finetune"][name][subject]
                        tag = "" if protocol == main_protocol else f"{protocol}:"
                        row.update({
                            f"{tag}probe_bacc": probe["balanced_accuracy"],
                            f"{tag}probe_val_bacc": probe["val_balanced_accuracy"],
                            f"{tag}finetune_bacc": tune["balanced_accuracy"],
                            f"{tag}finetune_val_bacc": tune["val_balanced_accuracy"],
                            f"{tag}finetune_minus_probe": tune["balanced_accuracy"] - probe["balanced_accuracy"],
                            f"{tag}selection_gap": tune["balanced_selection_gap"],
                            f"{tag}random_choice_gap": tune["random_choice_gap"],
                            f"{tag}accuracy_gap": tune["optimistic_best_test_acc"] - tune["accuracy"],
                        })  # fmt: skip
                    rows.append(row)
            print(
                f"seed {seed} fold {fold} (validation {val_subjects}): done ({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
    choices = nested_selection(rows, args.methods)
    rows += [dict(r, method=SELECTED) for r in rows if choices.get((r["seed"], r["fold"])) == r["method"]]
    methods = [*args.methods, *CONTROLS, SELECTED]
    keys = ("probe_bacc", "probe_val_bacc", "finetune_bacc", "finetune_val_bacc")
    if args.validation_only:  # per protocol: a protocol (e.g. its budget or learning rate) is chosen here too
        print("\nvalidation only (subjects never tested in their fold); mean +/- std over seeds")
        print("| protocol | method | probe (val) | fine-tune (val) |\n|---|---|---|---|")
        for protocol in args.protocols:
            tag = "" if protocol == args.protocols[0] else f"{protocol}:"
            for m in methods:
                per = [[np.mean([r[tag + k] for r in rows if r["method"] == m and r["seed"] == e])
                        for e in range(args.seeds)] for k in ("probe_val_bacc", "finetune_val_bacc")]  # fmt: skip
                print(
                    f"| {protocol} | {m} | " + " | ".join(f"{np.mean(v):.3f} +/- {np.std(v):.3f}" for v in per) + " |"
                )
        return
    summary = {}
    for m in methods:
        summary[m] = {}
        for k in keys:
            per_seed = [np.mean([r[k] for r in rows if r["method"] == m and r["seed"] == e]) for e in range(args.seeds)]
            summary[m][k] = (float(np.mean(per_seed)), float(np.std(per_seed)))
    pairs = [(m, c) for m in methods for c in CONTROLS if m != c]
    print("nested selection (method chosen per seed and fold on that fold's validation subjects): "
          + ", ".join(f"seed {e} fold {k}: {m}" for (e, k), m in choices.items()))  # fmt: skip
    comparisons = compare_methods(rows, pairs, ("probe_bacc", "finetune_bacc"), unit=("subject", "seed"))
    n = len(subjects)
    print(f"\n{n} subjects, {args.folds} folds, {args.seeds} seeds, {args.epochs} pre-training epochs, "
          f"{args.finetune_epochs} fine-tuning epochs; balanced accuracy, mean +/- std over seeds of subject means")  # fmt: skip
    print("| method | probe | probe (val) | fine-tune | fine-tune (val) |\n|---|---|---|---|---|")
    for m in methods:
        print(f"| {m} | " + " | ".join(f"{summary[m][k][0]:.3f} +/- {summary[m][k][1]:.3f}" for k in keys) + " |")
    print("\npaired over subject x seed (a - b, 95% bootstrap CI, Wilcoxon p):")
    print("| a | b | metric | mean difference | 95% CI | p | n |\n|---|---|---|---|---|---|---|")
    for c in comparisons:
        print(f"| {c['a']} | {c['b']} | {c['metric']} | {c['mean_difference']:+.3f} | "
              f"[{c['ci_low']:+.3f}, {c['ci_high']:+.3f}] | {c['p_value']:.3g} | {c['n']} |")  # fmt: skip
    protocols, per_seed_rows = {}, {}
    print("\nprotocols on the same encoders: balanced accuracy (mean +/- std over seeds of subject means); "
          "fine-tune - probe; selection gap = best test balanced accuracy over checkpoints - the selected one's; "
          "random-choice gap = best - mean over checkpoints (what a uniformly random checkpoint leaves on average: "
          "a selection gap above it is worse than chance) "
          "(over each model's test part); the same in plain accuracy (rewards predicting the majority class)")  # fmt: skip
    print("| protocol | method | probe | fine-tune | fine-tune (val) | fine-tune - probe | selection gap | "
          "random-choice gap | accuracy gap |\n|---|---|---|---|---|---|---|---|---|")  # fmt: skip
    for protocol in args.protocols:
        tag = "" if protocol == args.protocols[0] else f"{protocol}:"
        protocols[protocol] = {"eval_seconds": eval_seconds[protocol]}
        for m in methods:
            per_seed = {
                key: [float(np.mean([r[tag + key] for r in rows if r["method"] == m and r["seed"] == e]))
                      for e in range(args.seeds)]
                for key in ("probe_bacc", "finetune_bacc", "finetune_val_bacc", "finetune_minus_probe", "selection_gap",
                            "random_choice_gap", "accuracy_gap")
            }  # fmt: skip
            cells = {key: (float(np.mean(v)), float(np.std(v))) for key, v in per_seed.items()}
            protocols[protocol][m] = cells
            per_seed_rows[f"{protocol}:{m}"] = per_seed
            print(f"| {protocol} | {m} | " + " | ".join(f"{v[0]:+.3f} +/- {v[1]:.3f}" if k == "finetune_minus_probe"
                                                         else f"{v[0]:.3f} +/- {v[1]:.3f}" for k, v in cells.items()) + " |")  # fmt: skip
    if len(args.protocols) > 1:  # the issue-21 questions, answered with their uncertainty
        first = args.protocols[0]
        print(f"\neach protocol vs {first}, paired by seed: the fine-tuned figure's spread (std ratio, ddof 1; "
              "Pitman-Morgan p of equal variances) and the selection gap (mean difference over seeds, 95% "
              "bootstrap CI, Wilcoxon p)")  # fmt: skip
        print("| protocol | method | fine-tune std ratio | p | selection gap difference | 95% CI | p |\n"
              "|---|---|---|---|---|---|---|")  # fmt: skip
        for protocol in args.protocols[1:]:
            for m in methods:
                this, base = per_seed_rows[f"{protocol}:{m}"], per_seed_rows[f"{first}:{m}"]
                spread = paired_spread_comparison(this["finetune_bacc"], base["finetune_bacc"])
                gap = paired_comparison(this["selection_gap"], base["selection_gap"])
                protocols[protocol][m]["vs_first"] = {"spread": spread, "selection_gap": gap}
                print(f"| {protocol} | {m} | {spread['std_ratio']:.2f} | {spread['p_value']:.3g} | "
                      f"{gap['mean_difference']:+.3f} | [{gap['ci_low']:+.3f}, {gap['ci_high']:+.3f}] | "
                      f"{gap['p_value']:.3g} |")  # fmt: skip
    if args.curves:
        print_curves(curves)
    print("evaluation seconds per protocol (all seeds and folds): "
          + ", ".join(f"{p}: {v['eval_seconds']:.0f}" for p, v in protocols.items()))  # fmt: skip
    print("\ndiagnostics at the end of pre-training (mean over seeds and folds):")
    for m, hist in diagnostics.items():
        keys_d = [k for k in hist[0] if k != "epoch"]
        print(f"  {m}: " + ", ".join(f"{k}={np.mean([h[k] for h in hist]):.3g}" for k in keys_d))
    print(f"\nwall time: {time.perf_counter() - started:.0f} s")
    out = {
        "methods": {
            m: {"probe_bacc": summary[m]["probe_bacc"][0], "finetune_bacc": summary[m]["finetune_bacc"][0]}
            for m in methods
        },
        "comparisons": comparisons,
        "protocols": protocols,
        "per_seed": per_seed_rows,  # protocol:method -> figure -> its subject mean per seed (spreads, their CIs)
    }
    if args.curves:
        out["curves"] = {p: {m: mean_curves(v) for m, v in per_method.items()} for p, per_method in curves.items()}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
