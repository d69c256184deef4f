"""Does pre-training help through its learned weights, or through BatchNorm statistics alone?

    python benchmarks/untrained_control.py [--seeds 0 1 2] [--epochs 10]

On the synthetic pair at the ablation scale (8 SEED-like source subjects, the DEAP-like target of
``experiments/ablations_synthetic.yaml``): for SCMM as published and SCMM with soft weights from
time, pre-train at lr 5e-4 and, as the control, at lr 0 (same initial weights; only the encoder's
BatchNorm running statistics change). Each encoder, and the protocol's ``random_init`` control
(fresh BatchNorm statistics), is probed (one L2, 1e-3) and fine-tuned (10 epochs, batch 128) on the
target. Prints mean target balanced accuracy per seed; last line JSON.
"""

from __future__ import annotations

import json
import warnings

import lightning as L
import numpy as np

from scmm_lightning.cli.options import StrictArgumentParser
from scmm_lightning.corpora import DEAP_32, SplitConfig
from scmm_lightning.datamodules import CrossCorpusDataModule, SyntheticEEGDataModule
from scmm_lightning.evaluation import FinetuneConfig, random_encoder, run_protocol
from scmm_lightning.tasks import SCMMPretraining

METHODS = {
    "scmm": {},
    "scmm_time": {"similarity": "cosine", "temperature": 0.1, "soft_weights_from": "time", "time_radius": 15},
}


def pair() -> tuple[CrossCorpusDataModule, SyntheticEEGDataModule]:
    src = SyntheticEEGDataModule(
        num_channels=62, num_classes=3, channels=list(DEAP_32), batch_size=256, num_subjects=8, windows_per_trial=40
    )
    tgt = SyntheticEEGDataModule(
        num_channels=32, num_classes=2, num_subjects=8, trials_per_session=10, windows_per_trial=40, seed=1,
        corpus_shift=1.5, class_strength=0.3, noise_std=0.5, subject_std=1.0,
        split=SplitConfig(kind="trial", train_trials=6),
    )  # fmt: skip
    return CrossCorpusDataModule(src, tgt), tgt


def scores(encoders: dict, tgt: SyntheticEEGDataModule, seed: int) -> dict[str, dict[str, float]]:
    res = run_protocol(encoders, tgt.train_set, tgt.test_set, 2, FinetuneConfig(epochs=10, batch_size=128), seed,
                       ("probe", "finetune"), l2_grid=(1e-3,))  # fmt: skip
    return {
        name: {kind: float(np.mean([m["balanced_accuracy"] for m in res[kind][name].values()])) for kind in res}
        for name in encoders
    }


def main() -> None:
    p = StrictArgumentParser(description=__doc__)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=10)
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    table: dict[str, dict[str, list[float]]] = {}
    for seed in args.seeds:
        for method, kwargs in METHODS.items():
            for lr in (5e-4, 0.0):
                L.seed_everything(seed, verbose=False)
                data, tgt = pair()
                model = SCMMPretraining(num_channels=32, lr=lr, **kwargs)
                L.Trainer(max_epochs=args.epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                          enable_progress_bar=False, enable_model_summary=False).fit(model, data)  # fmt: skip
                encoders = {f"{method} lr={lr:g}": model.encoder}
                if method == "scmm" and lr:
                    encoders["random_init"] = random_encoder(model, seed + 1)
                for name, s in scores(encoders, tgt, seed).items():
                    for kind, v in s.items():
                        table.setdefault(name, {}).setdefault(kind, []).append(v)
        print(f"seed {seed} done", flush=True)
    print(f"\nbalanced accuracy on the target, seeds {args.seeds} ({args.epochs} pre-training epochs)")
    print("| encoder | probe (per seed) | fine-tune (per seed) |\n|---|---|---|")
    for name, s in table.items():
        print(f"| {name} | " + " | ".join(" / ".join(f"{v:.3f}" for v in s[k]) for k in ("probe", "finetune")) + " |")
    print(json.dumps({name: {k: [round(v, 4) for v in vals] for k, vals in s.items()} for name, s in table.items()}))


if __name__ == "__main__":
    main()
