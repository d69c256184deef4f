"""Train/test splits as pure functions of the window metadata (no trial or subject leaks)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ..field_types import check_field_types


def trial_split(metadata: dict[str, np.ndarray], first_k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per subject and session: trials ranked by id, the first ``first_k`` -> first mask, rest -> second.

    A pure function of the metadata: no trial ever lands on both sides.
    """
    trial = np.asarray(metadata["trial"])
    first = np.zeros(trial.shape, dtype=bool)
    keys = np.stack([metadata["subject"], metadata["session"]], axis=1)
    for key in np.unique(keys, axis=0):
        in_group = (keys == key).all(axis=1)
        trials = np.unique(trial[in_group])
        first |= in_group & np.isin(trial, trials[:first_k])
    return first, ~first


def per_class_trial_split(
    metadata: dict[str, np.ndarray], test_per_class: int, keep_per_class: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Per subject and session, for every class: its latest ``test_per_class`` trials (by id) test,
    the earlier ones fine-tune. A class with fewer than ``test_per_class + keep_per_class`` trials
    there tests on all but ``keep_per_class`` of them (so it keeps a fine-tuning and a validation
    trial), and one with ``keep_per_class`` or fewer is not tested there (the results then warn and
    the ``test_classes`` column shows it). Every trial is on exactly one side."""
    trial, label = np.asarray(metadata["trial"]), np.asarray(metadata["label"])
    test = np.zeros(trial.shape, dtype=bool)
    keys = np.stack([metadata["subject"], metadata["session"]], axis=1)
    for key in np.unique(keys, axis=0):
        in_group = (keys == key).all(axis=1)
        for c in np.unique(label[in_group]):
            trials = np.unique(trial[in_group & (label == c)])
            n_test = max(0, min(test_per_class, len(trials) - keep_per_class))
            if n_test:
                test |= in_group & (label == c) & np.isin(trial, trials[len(trials) - n_test :])
    return ~test, test


def loso_split(metadata: dict[str, np.ndarray], test_subject: int) -> tuple[np.ndarray, np.ndarray]:
    """Leave one subject out: every other subject trains, ``test_subject`` tests."""
    subject = np.asarray(metadata["subject"])
    if test_subject not in set(subject.tolist()):
        raise ValueError(f"test_subject {test_subject} is not among the subjects {sorted(set(subject.tolist()))}")
    test = subject == test_subject
    return ~test, test


def leave_subjects_out_split(
    metadata: dict[str, np.ndarray], test_subjects: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """``test_subjects`` test, every other subject trains: no subject on both sides."""
    subject = np.asarray(metadata["subject"])
    missing = sorted(set(test_subjects) - set(subject.tolist()))
    if missing:
        raise ValueError(f"test_subjects {missing} are not among the subjects {sorted(set(subject.tolist()))}")
    test = np.isin(subject, test_subjects)
    if test.all():
        raise ValueError(f"test_subjects {sorted(test_subjects)} are every subject; leave some to train on")
    return ~test, test


def cross_session_split(
    metadata: dict[str, np.ndarray], train_sessions: list[int], test_sessions: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Train on ``train_sessions``, test on ``test_sessions`` (disjoint)."""
    overlap = set(train_sessions) & set(test_sessions)
    if overlap:
        raise ValueError(f"sessions {sorted(overlap)} are in both train_sessions and test_sessions")
    session = np.asarray(metadata["session"])
    return np.isin(session, train_sessions), np.isin(session, test_sessions)


@dataclass
class SplitConfig:
    """How windows are split into train and test, as a pure function of the metadata.

    ``trial``: per subject and session the first ``train_trials`` trials train, the rest test
    (SEED's 9/6), or, with ``test_trials_per_class`` k, the latest k trials of EVERY class test and
    the rest train (corpora whose label order makes "the first n trials" miss a class: SEED-IV's
    first 12 session-1 trials hold 2 happy trials and its last 6 no sad one); ``loso``: ``test_subject`` tests, the others train; ``cross_session``:
    ``train_sessions`` vs ``test_sessions``; ``leave_subjects_out``: ``test_subjects`` test, the
    other subjects train; ``none``: everything trains (pre-training).
    """

    kind: Literal["trial", "loso", "cross_session", "leave_subjects_out", "none"] = "trial"
    train_trials: int = 9
    test_trials_per_class: int | None = None
    test_subject: int | None = None
    test_subjects: list[int] | None = None
    train_sessions: list[int] = field(default_factory=lambda: [1, 2])
    test_sessions: list[int] = field(default_factory=lambda: [3])

    def __post_init__(self) -> None:
        check_field_types(self, "split")

    def masks(self, metadata: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        if self.kind == "trial":
            if self.test_trials_per_class is not None:
                if self.test_trials_per_class < 1:
                    raise ValueError(
                        f"split.test_trials_per_class={self.test_trials_per_class}: give 1 or more (or leave it unset "
                        "to use split.train_trials)"
                    )
                return per_class_trial_split(metadata, self.test_trials_per_class)
            return trial_split(metadata, self.train_trials)
        if self.kind == "loso":
            if self.test_subject is None:
                raise ValueError("split.kind=loso needs split.test_subject")
            return loso_split(metadata, self.test_subject)
        if self.kind == "cross_session":
            return cross_session_split(metadata, self.train_sessions, self.test_sessions)
        if self.kind == "leave_subjects_out":
            if not self.test_subjects:
                raise ValueError("split.kind=leave_subjects_out needs split.test_subjects (a list of subject ids)")
            return leave_subjects_out_split(metadata, self.test_subjects)
        if self.kind == "none":
            n = len(metadata["subject"])
            return np.ones(n, bool), np.zeros(n, bool)
        raise ValueError(
            f"split.kind {self.kind!r} unknown; choose trial, loso, cross_session, leave_subjects_out or none"
        )


def subject_folds(subjects: list[int], n_folds: int = 4) -> list[list[int]]:
    """Cross-subject folds that together test every subject exactly once: the sorted subjects dealt
    into ``n_folds`` contiguous groups of near-equal size (sizes differ by at most one)."""
    ordered = sorted(set(int(s) for s in subjects))
    if not 2 <= n_folds <= len(ordered):
        raise ValueError(f"n_folds={n_folds}: need 2 <= n_folds <= the {len(ordered)} subjects")
    base, extra = divmod(len(ordered), n_folds)
    folds, start = [], 0
    for k in range(n_folds):
        size = base + (1 if k < extra else 0)
        folds.append(ordered[start : start + size])
        start += size
    return folds


def rotating_validation(folds: list[list[int]], per_fold: int = 2) -> list[list[int]]:
    """Validation subjects for each fold of :func:`subject_folds`: the first ``per_fold`` subjects of
    the NEXT fold (the last fold takes the first fold's). They are training subjects of their fold,
    never its test subjects, and they differ from fold to fold, so settings chosen on validation are
    not chosen on one person (a fixed "last training subject" is the same subject in most folds)."""
    if per_fold < 1 or any(len(f) < per_fold for f in folds):
        raise ValueError(
            f"per_fold={per_fold}: every fold must have at least that many subjects (sizes {[len(f) for f in folds]})"
        )
    return [list(folds[(k + 1) % len(folds)][:per_fold]) for k in range(len(folds))]
