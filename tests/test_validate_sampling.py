"""``validate --samples N`` (and ``--board``'s default 50) takes the same number from every class, not the
first N of a file ordered by class, and says how it chose them."""

from __future__ import annotations

import numpy as np

from tinykeras.validation import choose_samples, class_ids


def test_class_ordered_labels_are_stratified() -> None:
    y = np.repeat(np.arange(12), 40)  # like train's test.npz: ordered by class
    chosen, how = choose_samples(len(y), 50, y)
    counts = np.bincount(y[chosen], minlength=12)
    assert len(chosen) == 50 and counts.min() >= 4 and counts.max() <= 5, counts
    assert list(chosen) == sorted(chosen) and how.startswith("stratified by class: 50 of 480, from 12 classes")


def test_one_hot_labels_are_classes_too() -> None:
    y = np.eye(3, dtype=np.float32)[np.repeat(np.arange(3), 10)]
    assert list(class_ids(y)) == list(np.repeat(np.arange(3), 10))
    chosen, _ = choose_samples(30, 6, y)
    assert np.bincount(class_ids(y)[chosen]).tolist() == [2, 2, 2]


def test_regression_targets_are_evenly_spaced_and_all_means_all() -> None:
    y = np.linspace(0.0, 1.0, 100).astype(np.float32)
    chosen, how = choose_samples(100, 10, y)
    assert chosen[0] == 0 and chosen[-1] == 99 and len(chosen) == 10 and how.startswith("evenly spaced")
    chosen, how = choose_samples(100, None, y)
    assert len(chosen) == 100 and how == "all 100"
    assert choose_samples(5, 50, np.arange(5))[1] == "all 5"
