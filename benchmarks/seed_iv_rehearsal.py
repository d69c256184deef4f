"""A dress rehearsal of issue 21's real-SEED-IV check, on a full-size corpus in the official layout.

    python benchmarks/seed_iv_rehearsal.py [--subjects 15] [--signal 0.2] [--trial_effect 1.0]
        [--pretrain_epochs 20] [--config experiments/seed_to_seed_iv.yaml] [--work DIR]

The real check (shipped SEED -> SEED-IV config, 20 pre-training epochs, a real SEED-IV feature set)
needs licensed data this project does not have. This runs the same command on stand-ins written by
the test fixtures' generators (``tests/data/*/generate.py``) in the official layouts:

- SEED-IV: ``--subjects`` subjects x 3 sessions x 24 trials of ``eeg_feature_smooth`` (de_LDS and
  de_movingAve only; no raw signals), 20-64 four-second windows per trial (the real corpus averages
  ~40; issue 21 counted ~376 fine-tuning windows in 9 trials), the official per-session label tables,
  and a planted class signal (``planted_effects``: subject offsets, a class effect of size ``--signal``
  half shared by every subject and half the subject's own, and per-trial offsets of size
  ``--trial_effect``, so a held-out trial is harder than a held-out window). The defaults were set by
  the formula in ``planted_effects``' docstring to a within-subject difficulty near what issue 21
  reports for the raw-feature probe on real SEED-IV (accuracy 0.44-0.49, 3 classes), not measured on
  SEED-IV: what this checks is the pipeline, not the method.
- SEED (the pre-training source, labels unused): ``--subjects`` subjects x 3 sessions x 15 trials of
  ``--source_windows`` one-second windows of de_LDS / de_movingAve (the real corpus has ~226 per trial:
  fewer here to keep pre-training short).

Then ``python -m scmm_lightning fit --config CONFIG --trainer.max_epochs N`` in a subprocess (the
user's command), and from its ``transfer_results.csv``: every subject's ``test_classes`` against the
classes the config scores, each row's mean accuracy and balanced accuracy against chance, its
training accuracy, its probe; the warnings the run printed; and the raw-feature probe against
scikit-learn's ``LogisticRegressionCV`` on the same fine-tuning windows and features (standardised
by their own statistics; its own grid of 10 C values 1e-4 .. 1e4, balanced-accuracy scoring, folds
grouped by trial with one trial per class in each: ``StratifiedGroupKFold(3)``), scored on the same
test windows: issue 21's second yardstick (within 2 points). Needs scikit-learn (the dev extra).
Last line: JSON.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from scmm_lightning.cli.options import StrictArgumentParser

ROOT = Path(__file__).resolve().parents[1]


def generator(corpus: str):  # noqa: ANN201
    """The official-layout writer of ``tests/data/<corpus>/generate.py`` (the tests' fixtures' own)."""
    path = ROOT / "tests" / "data" / corpus / "generate.py"
    spec = importlib.util.spec_from_file_location(f"fixture_{corpus}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_corpora(
    data: Path, subjects: int, signal: float, trial_effect: float, source_windows: tuple[int, int]
) -> None:
    ids = tuple(range(1, subjects + 1))
    generator("seed").write_seed(data / "SEED", ids, source_windows, families=("de",), raw=False)
    generator("seed_iv").write_seed_iv(
        data / "SEED_IV",
        ids,
        (20, 64),
        signal=signal,
        trial_effect=trial_effect,
        raw=False,
        keys=("de_LDS", "de_movingAve"),
    )


def run_fit(config: Path, work: Path, data: Path, pretrain_epochs: int, extra: list[str]) -> tuple[float, str]:
    """The user's command in a fresh interpreter; returns its seconds and stderr."""
    env = {**os.environ, "SCMM_DATA_ROOT": str(data), "SCMM_CACHE_DIR": str(work / "cache")}
    cmd = [
        sys.executable, "-m", "scmm_lightning", "fit", "--config", str(config),
        "--trainer.max_epochs", str(pretrain_epochs), "--trainer.enable_progress_bar", "false",
        "--trainer.default_root_dir", str(work / "run"), "--trainer.logger.init_args.save_dir", str(work / "run"),
        *extra,
    ]  # fmt: skip
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return seconds, done.stderr


def target_parts(config: Path, data: Path, work: Path, extra: list[str]):  # noqa: ANN201
    """The config's target datamodule, set up as the run set it up (same env, same overrides)."""
    from scmm_lightning.cli.lightning_cli import build_cli

    os.environ.update(SCMM_DATA_ROOT=str(data), SCMM_CACHE_DIR=str(work / "cache"))
    cli = build_cli(["--config", str(config), *extra], run=False)
    target = cli.datamodule.target
    target.setup("fit")
    return target


def sklearn_reference(train, test, folds: int = 3) -> dict[int, float]:  # noqa: ANN001
    """Per target subject: scikit-learn's cross-validated logistic regression on its fine-tuning windows
    (every fine-tuning trial; C by trial-grouped folds, one trial per class in each), its test accuracy."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.preprocessing import StandardScaler

    out = {}
    for subject in np.unique(train.meta["subject"].numpy()):
        rows = train.meta["subject"].numpy() == subject
        x, y = train.x[rows].flatten(1).numpy().astype(np.float64), train.meta["label"].numpy()[rows]
        trial = train.meta["trial"].numpy()[rows] * 10 + train.meta["session"].numpy()[rows]
        scaler = StandardScaler().fit(x)
        splits = list(StratifiedGroupKFold(folds).split(x, y, groups=trial))
        model = LogisticRegressionCV(Cs=10, cv=splits, scoring="balanced_accuracy", max_iter=5000)
        model.fit(scaler.transform(x), y)
        t_rows = test.meta["subject"].numpy() == subject
        xt, yt = test.x[t_rows].flatten(1).numpy().astype(np.float64), test.meta["label"].numpy()[t_rows]
        out[int(subject)] = float((model.predict(scaler.transform(xt)) == yt).mean())
    return out


def summarise(rows: list[dict], num_classes: int) -> dict:
    """Per method: subject means, the subjects whose test part lacks a scored class, chance."""
    scored = ";".join(str(c) for c in range(num_classes))
    out = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        out[method] = {
            "subjects": len(mine),
            **{
                k: float(np.mean([float(r[k]) for r in mine]))
                for k in (
                    "accuracy",
                    "balanced_accuracy",
                    "probe_accuracy",
                    "probe_balanced_accuracy",
                    "train_accuracy",
                )
            },  # fmt: skip
            "subjects_missing_a_class": [int(r["subject"]) for r in mine if r["test_classes"] != scored],
        }
    return out


def rehearse(
    work: Path,
    subjects: int = 15,
    signal: float = 0.2,
    trial_effect: float = 1.0,
    pretrain_epochs: int = 20,
    config: Path = ROOT / "experiments" / "seed_to_seed_iv.yaml",
    source_windows: tuple[int, int] = (60, 90),
    extra: list[str] | None = None,
) -> dict:
    """Write the corpora, run the shipped config, check its table; the outcome as a dict."""
    from scmm_lightning.evaluation.results import read_rows

    extra = list(extra or [])
    data = work / "data"
    t0 = time.perf_counter()
    write_corpora(data, subjects, signal, trial_effect, source_windows)
    written = time.perf_counter() - t0
    seconds, stderr = run_fit(config, work, data, pretrain_epochs, extra)
    (table,) = sorted((work / "run").rglob("transfer_results.csv"))
    rows = read_rows(table)
    for r in rows:  # read_rows parses numbers: "0;1;2" stays text, a lone "0" would not
        r["test_classes"] = str(r["test_classes"])
    target = target_parts(config, data, work, extra)
    num_classes = target.num_classes
    methods = summarise(rows, num_classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = sklearn_reference(target.train_set, target.test_set)
    probe = {int(r["subject"]): float(r["probe_accuracy"]) for r in rows if r["method"] == "raw_features"}
    ours = float(np.mean([probe[s] for s in theirs]))
    sklearn = float(np.mean(list(theirs.values())))
    warned = [line for line in stderr.splitlines() if re.search(r"\w+Warning: ", line)]
    return {
        "subjects": subjects,
        "signal": signal,
        "trial_effect": trial_effect,
        "pretrain_epochs": pretrain_epochs,
        "classes": num_classes,
        "chance": 1 / num_classes,
        "methods": methods,
        "every_test_part_holds_every_class": all(not m["subjects_missing_a_class"] for m in methods.values()),
        "rows_below_chance": [k for k, m in methods.items() if m["balanced_accuracy"] < 1 / num_classes],
        "raw_probe_accuracy": ours,
        "sklearn_accuracy": sklearn,
        "raw_probe_minus_sklearn": ours - sklearn,
        "warnings": warned,
        "write_seconds": round(written, 1),
        "fit_seconds": round(seconds, 1),
    }


def main() -> None:
    p = StrictArgumentParser(description=__doc__)
    p.add_argument("--subjects", type=int, default=15)
    p.add_argument("--signal", type=float, default=0.2, help="the planted class effect (planted_effects)")
    p.add_argument("--trial_effect", type=float, default=1.0, help="the trials' planted offsets (planted_effects)")
    p.add_argument("--pretrain_epochs", type=int, default=20)
    p.add_argument("--config", type=Path, default=ROOT / "experiments" / "seed_to_seed_iv.yaml")
    p.add_argument("--source_windows", type=int, nargs=2, default=(60, 90))
    p.add_argument(
        "--work", type=Path, default=None, help="where to write the corpora and the run (default: a temp dir)"
    )
    args = p.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="seed_iv_rehearsal_"))
    out = rehearse(work, args.subjects, args.signal, args.trial_effect, args.pretrain_epochs, args.config,
                   tuple(args.source_windows))  # fmt: skip
    print(f"work folder: {work}")
    print(f"{out['subjects']} subjects, {out['classes']} classes (chance {out['chance']:.3f}), planted signal "
          f"{out['signal']} (trial effect {out['trial_effect']}), {out['pretrain_epochs']} pre-training epochs; fit {out['fit_seconds']} s")  # fmt: skip
    print(
        "| row | accuracy | balanced acc. | probe acc. | probe balanced acc. | train acc. | subjects missing a class |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, m in out["methods"].items():
        print(f"| {name} | {m['accuracy']:.3f} | {m['balanced_accuracy']:.3f} | {m['probe_accuracy']:.3f} | "
              f"{m['probe_balanced_accuracy']:.3f} | {m['train_accuracy']:.3f} | {m['subjects_missing_a_class'] or 'none'} |")  # fmt: skip
    print(f"raw-feature probe accuracy {out['raw_probe_accuracy']:.3f} vs scikit-learn {out['sklearn_accuracy']:.3f} "
          f"({out['raw_probe_minus_sklearn']:+.3f})")  # fmt: skip
    print(f"warnings printed by the run: {len(out['warnings'])}")
    for line in out["warnings"]:
        print("  " + line[:300])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
