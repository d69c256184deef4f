"""The raw-feature probe against scikit-learn's own cross-validated logistic regression, on real EEG.

    python benchmarks/probe_vs_sklearn.py [--root ../shared/data/eegmat] [--folds 4]

eegmat (12 subjects, rest vs mental arithmetic) through the recordings reader (19 electrodes, DE
of 1 s windows, per-subject z-score), the cross-subject folds of ``benchmarks/real_eeg.py``. For each
fold: our probe (``run_protocol``, raw features, class-balanced, L2 chosen by 3-fold
cross-validation over the training subjects, refitted) and scikit-learn's ``LogisticRegressionCV``
(its own grid of 10 C values 1e-4 .. 1e4, ``class_weight="balanced"``, balanced-accuracy scoring,
folds grouped by subject: ``GroupKFold(3)``) on the same training windows, standardised by their
own statistics, scored on the same test subjects. Issue 21's yardstick: our mean accuracy within 2
points of scikit-learn's. Needs scikit-learn (the dev extra). Last line JSON.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from scmm_lightning.cli.options import StrictArgumentParser
from scmm_lightning.corpora import SplitConfig, subject_folds
from scmm_lightning.datamodules import RecordingsDataModule
from scmm_lightning.evaluation import FinetuneConfig, FlattenFeatures, run_protocol

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import GroupKFold
    from sklearn.preprocessing import StandardScaler

    sys.path.insert(0, str(ROOT))  # benchmarks/ is a folder of scripts, not an installed package
    from benchmarks.real_eeg import MONTAGE, write_table

    p = StrictArgumentParser(description=__doc__)
    default = os.environ.get("SCMM_EEGMAT_DIR") or str(ROOT.parent / "shared" / "data" / "eegmat")
    p.add_argument("--root", default=default)
    p.add_argument("--folds", type=int, default=4)
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    work = Path(tempfile.mkdtemp(prefix="probe_vs_sklearn_"))
    table = work / "eegmat.csv"
    subjects = write_table(Path(args.root), table)
    common = dict(root=args.root, table=str(table), name="eegmat", montage=MONTAGE, cache_dir=str(work / "cache"))
    ours, theirs, ours_bacc, theirs_bacc = [], [], [], []
    for fold in subject_folds(subjects, args.folds):
        target = RecordingsDataModule(
            split=SplitConfig(kind="leave_subjects_out", test_subjects=fold), normalization="subject_zscore", **common
        )
        target.setup("fit")
        train, test = target.train_set, target.test_set
        res = run_protocol({"raw": FlattenFeatures(len(MONTAGE), 5)}, train, test, 2, FinetuneConfig(), 0,
                           ("probe",), balanced_probe=True)["probe"]["raw"]  # fmt: skip
        x, y = train.x.flatten(1).numpy(), train.meta["label"].numpy()
        scaler = StandardScaler().fit(x)
        splits = list(GroupKFold(3).split(x, y, groups=train.meta["subject"].numpy()))
        model = LogisticRegressionCV(Cs=10, cv=splits, scoring="balanced_accuracy", class_weight="balanced",
                                     max_iter=5000).fit(scaler.transform(x), y)  # fmt: skip
        pred = model.predict(scaler.transform(test.x.flatten(1).numpy()))
        for subject, m in res.items():
            rows = test.meta["subject"].numpy() == subject
            yt = test.meta["label"].numpy()[rows]
            ours.append(m["accuracy"])
            ours_bacc.append(m["balanced_accuracy"])
            theirs.append(float((pred[rows] == yt).mean()))
            theirs_bacc.append(float(np.mean([(pred[rows][yt == c] == c).mean() for c in np.unique(yt)])))
        print(f"fold {fold}: ours l2 {next(iter(res.values()))['l2']:g}, scikit-learn C {float(model.C_[0]):.3g}")
    out = {
        "subjects": len(ours),
        "ours_accuracy": float(np.mean(ours)),
        "sklearn_accuracy": float(np.mean(theirs)),
        "ours_balanced_accuracy": float(np.mean(ours_bacc)),
        "sklearn_balanced_accuracy": float(np.mean(theirs_bacc)),
    }
    out["accuracy_difference"] = out["ours_accuracy"] - out["sklearn_accuracy"]
    print(f"mean over {len(ours)} test subjects: accuracy ours {out['ours_accuracy']:.3f} vs scikit-learn "
          f"{out['sklearn_accuracy']:.3f} ({out['accuracy_difference']:+.3f}); balanced accuracy "
          f"{out['ours_balanced_accuracy']:.3f} vs {out['sklearn_balanced_accuracy']:.3f}")  # fmt: skip
    print(json.dumps(out))


if __name__ == "__main__":
    main()
