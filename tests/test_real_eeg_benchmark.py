"""The helpers of ``benchmarks/real_eeg.py`` on hand-made rows: they need no recordings, so they run
everywhere (``tests/test_real_eeg.py`` is skipped where eegmat is absent, as in CI)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


def _bench():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location(
        "real_eeg", Path(__file__).resolve().parents[1] / "benchmarks/real_eeg.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_nested_selection_chooses_per_fold_on_that_folds_validation_only() -> None:
    """Hand-made rows: fold 0's validation favours b, fold 1's favours a (ties go to the earlier
    method); the test figures (which favour the other method) never move the choice."""
    bench = _bench()
    rows = []
    for fold, val in ((0, {"a": 0.6, "b": 0.7}), (1, {"a": 0.8, "b": 0.5}), (2, {"a": 0.5, "b": 0.5})):
        for m in ("a", "b"):
            for subject in (1, 2):
                rows.append({"method": m, "seed": 0, "fold": fold, "subject": subject + 10 * fold,
                             "probe_val_bacc": val[m], "probe_bacc": 1.0 - val[m]})  # fmt: skip
    assert bench.nested_selection(rows, ["a", "b"]) == {(0, 0): "b", (0, 1): "a", (0, 2): "a"}


def test_mean_curves_average_each_checkpoint_and_count_the_choices() -> None:
    """``benchmarks/real_eeg.py --curves``: two models' curves averaged checkpoint by checkpoint, by hand."""
    bench = _bench()
    models = [
        {
            "fold_val_bacc": [0.6, 0.5, 0.4],
            "fold_test_bacc": [0.5, 0.7, 0.6],
            "test_bacc": [0.5, 0.6, 0.9],
            "chosen": 0,
        },
        {
            "fold_val_bacc": [0.8, 0.9, 0.6],
            "fold_test_bacc": [0.7, 0.5, 0.6],
            "test_bacc": [0.7, 0.8, 0.5],
            "chosen": 1,
        },
    ]
    got = bench.mean_curves(models)
    assert got["fold_val_bacc"] == pytest.approx([0.7, 0.7, 0.5])
    assert got["fold_test_bacc"] == pytest.approx([0.6, 0.6, 0.6])
    assert got["test_bacc"] == pytest.approx([0.6, 0.7, 0.7])
    assert got["chosen"] == [1, 1, 0]
