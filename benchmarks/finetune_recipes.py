"""Fine-tuning recipes and selection, before and after, on the synthetic pair and the separable fixture.

    python benchmarks/finetune_recipes.py [--seeds 0 1 2] [--settings synthetic separable]
        [--protocols lpft/fixed reference/holdout lpft/cv lpft/cv/freeze_batchnorm=false ...]

For each setting and seed: pre-train SCMM briefly on the source, then evaluate the same encoders
(``pretrained``, ``random_init``, ``raw_features``) under two protocols in one run:

- ``lpft/fixed`` (the shipped default): the probe's L2 chosen by 3-fold cross-validation grouped by
  trial; LP-FT starts from the probe and trains on every fine-tuning trial for the whole budget (60
  steps of 64 windows here, the demo's), its last checkpoint reported (``lpft/cv``, the default until
  session 20, chooses the checkpoint by the same folds and refits).
- ``reference/holdout`` (the earlier default): a fresh head, the demo's 15 epochs at batch 128, the
  epoch and the probe's L2 chosen on one validation trial per class.

``--protocols`` runs others on the same encoders: a recipe's budget above with the selection and
FinetuneConfig fields changed (``lpft/cv``, ``lpft/holdout``, ``lpft/cv/freeze_batchnorm=false``; the syntax of
``benchmarks/real_eeg.py``).

Settings: ``synthetic`` is the demo pair (``experiments/synthetic.yaml``: SEED-like source, 15
subjects; DEAP-like target, 8 subjects, first 6 of 10 trials fine-tune); ``separable`` the binary
DEAP-layout fixture of ``tests/test_evaluation.py`` (alpha DE separates the classes; 3 subjects,
first 24 of 40 trials fine-tune). Prints per setting, protocol and row: probe and fine-tuned
balanced accuracy, fine-tune - probe, the selection gap (best test balanced accuracy over checkpoints -
the selected checkpoint's; before session 11 plain accuracy), each as mean +/- std over seeds of the subject means, and the evaluation
seconds; last line JSON.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import tempfile
import time
import warnings
from pathlib import Path

import lightning as L
import numpy as np

from scmm_lightning.cli.options import StrictArgumentParser
from scmm_lightning.corpora import SplitConfig
from scmm_lightning.datamodules import CrossCorpusDataModule, DeapDataModule, SyntheticEEGDataModule
from scmm_lightning.evaluation import FinetuneConfig, evaluated_encoders, run_protocol
from scmm_lightning.tasks import SCMMPretraining

ROOT = Path(__file__).resolve().parents[1]
PROTOCOLS = {
    "lpft/fixed": FinetuneConfig(recipe="lpft", selection="fixed", folds=3, steps=60, eval_every=10, batch_size=64),
    "reference/holdout": FinetuneConfig(recipe="reference", selection="holdout", epochs=15, batch_size=128),
}


def synthetic(seed: int):  # noqa: ANN201
    from scmm_lightning.corpora import DEAP_32 as montage

    src = SyntheticEEGDataModule(num_channels=62, num_classes=3, num_subjects=15, trials_per_session=15,
                                 windows_per_trial=60, seed=0, channels=list(montage), batch_size=256)  # fmt: skip
    tgt = SyntheticEEGDataModule(
        num_channels=32, num_classes=2, num_subjects=8, trials_per_session=10, windows_per_trial=40, seed=1,
        corpus_shift=1.5, class_strength=0.3, noise_std=0.5, subject_std=1.0,
        split=SplitConfig(kind="trial", train_trials=6),
    )  # fmt: skip
    return CrossCorpusDataModule(src, tgt), tgt, dict(max_epochs=5), SCMMPretraining(num_channels=32)


def separable(seed: int, root: Path):  # noqa: ANN201
    common = dict(root=str(root), cache_dir=str(root / "cache"), normalization="zscore")
    source = DeapDataModule(split=SplitConfig(kind="none"), batch_size=128, **common)
    target = DeapDataModule(split=SplitConfig(kind="trial", train_trials=24), **common)
    model = SCMMPretraining(num_channels=32, temperature=0.05, sharpness=0.2)
    return CrossCorpusDataModule(source, target), target, dict(max_epochs=2, limit_train_batches=10), model


def write_separable(out: Path) -> Path:
    spec = importlib.util.spec_from_file_location("deap_generate", ROOT / "tests" / "data" / "deap" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_deap(out, subjects=(1, 2, 3), seed=4, valence_alpha=6.0)


def main() -> None:
    from real_eeg import protocol_options, protocol_spec  # the same protocol syntax as benchmarks/real_eeg.py

    p = StrictArgumentParser(description=__doc__)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--settings", nargs="+", default=["synthetic", "separable"])
    p.add_argument("--protocols", nargs="+", type=protocol_spec, default=list(PROTOCOLS),
                   help="recipe/selection[/option=value...]: a recipe's budget above with this selection and "
                        "FinetuneConfig fields changed, e.g. lpft/holdout or lpft/cv/freeze_batchnorm=false")  # fmt: skip
    args = p.parse_args()
    budgets = {name.split("/")[0]: config for name, config in PROTOCOLS.items()}  # each recipe's budget
    protocols = {}
    for spec in args.protocols:
        recipe, selection = spec.split("/")[:2]
        protocols[spec] = dataclasses.replace(budgets[recipe], **{"selection": selection, **protocol_options(spec)})
    warnings.filterwarnings("ignore")
    work = Path(tempfile.mkdtemp(prefix="finetune_recipes_"))
    deap_root = write_separable(work / "DEAP") if "separable" in args.settings else None
    per: dict = {}  # (setting, protocol, method) -> metric -> [per-seed means]
    seconds: dict = {}
    for setting in args.settings:
        for seed in args.seeds:
            L.seed_everything(seed, verbose=False)
            data, target, trainer_args, model = (
                synthetic(seed) if setting == "synthetic" else separable(seed, deap_root)
            )
            L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, **trainer_args).fit(model, data)  # fmt: skip
            L.seed_everything(seed, verbose=False)
            encoders = evaluated_encoders(model)
            for protocol, config in protocols.items():
                t0 = time.perf_counter()
                res = run_protocol(encoders, target.train_set, target.test_set, target.num_classes, config, seed,
                                   ("probe", "finetune"))  # fmt: skip
                seconds[(setting, protocol)] = seconds.get((setting, protocol), 0.0) + time.perf_counter() - t0
                for name in encoders:
                    probe, tune = res["probe"][name], res["finetune"][name]
                    cells = {
                        "probe": np.mean([m["balanced_accuracy"] for m in probe.values()]),
                        "finetune": np.mean([m["balanced_accuracy"] for m in tune.values()]),
                        "gap": np.mean([m["balanced_selection_gap"] for m in tune.values()]),
                    }
                    cells["finetune_minus_probe"] = cells["finetune"] - cells["probe"]
                    for k, v in cells.items():
                        per.setdefault((setting, protocol, name), {}).setdefault(k, []).append(float(v))
            print(f"{setting} seed {seed} done", flush=True)
    print(f"\nbalanced accuracy, mean +/- std over seeds {args.seeds} of the subject means")
    print("| setting | protocol | row | probe | fine-tune | fine-tune - probe | selection gap |")
    print("|---|---|---|---|---|---|---|")
    out = {}
    for (setting, protocol, name), cells in per.items():
        line = " | ".join(
            f"{np.mean(cells[k]):+.3f} +/- {np.std(cells[k]):.3f}" if k == "finetune_minus_probe"
            else f"{np.mean(cells[k]):.3f} +/- {np.std(cells[k]):.3f}"
            for k in ("probe", "finetune", "finetune_minus_probe", "gap")
        )  # fmt: skip
        print(f"| {setting} | {protocol} | {name} | {line} |")
        out[f"{setting}|{protocol}|{name}"] = {k: [round(v, 4) for v in vals] for k, vals in cells.items()}
    print("evaluation seconds (all seeds): " + ", ".join(f"{s} {p}: {v:.0f}" for (s, p), v in seconds.items()))
    out["seconds"] = {f"{s}|{p}": round(v, 1) for (s, p), v in seconds.items()}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
