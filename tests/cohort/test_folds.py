"""Patient-grouped, stratified, deterministic folds."""

from __future__ import annotations

import numpy as np

from ecgkt.cohort.folds import assign_folds, demographic_strata


def _cohort(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_patients = 400
    records_per_patient = rng.integers(1, 6, n_patients)
    groups = np.repeat(np.arange(n_patients) * 7 + 1000, records_per_patient)
    labels = np.zeros((len(groups), 4), dtype=np.float32)
    labels[:, 0] = rng.random(len(groups)) < 0.3
    labels[:, 1] = rng.random(len(groups)) < 0.05
    labels[:, 2] = np.isin(groups, groups[rng.random(len(groups)) < 0.02])  # rare, patient-level
    labels[:, 3] = np.nan
    return groups, labels


def test_no_patient_in_two_folds_and_all_folds_used() -> None:
    groups, labels = _cohort()
    folds = assign_folds(groups, labels, n_folds=20, seed=3)
    for group in np.unique(groups):
        assert len(np.unique(folds[groups == group])) == 1
    assert set(folds.tolist()) == set(range(20))


def test_deterministic_given_seed_and_different_across_seeds() -> None:
    groups, labels = _cohort()
    a = assign_folds(groups, labels, 20, seed=1)
    b = assign_folds(groups, labels, 20, seed=1)
    c = assign_folds(groups, labels, 20, seed=2)
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()


def test_labels_and_sizes_are_balanced_across_folds() -> None:
    groups, labels = _cohort()
    folds = assign_folds(groups, labels, n_folds=20, seed=0)
    sizes = np.bincount(folds, minlength=20)
    assert sizes.max() - sizes.min() <= 0.35 * sizes.mean()
    for j in (0, 1):
        per_fold = np.array([np.nansum(labels[folds == f, j]) for f in range(20)])
        expected = np.nansum(labels[:, j]) / 20
        assert np.abs(per_fold - expected).max() <= max(3.0, 0.5 * expected), (j, per_fold)
    # a random patient-grouped split would leave some folds without the common label's positives
    assert (np.array([np.nansum(labels[folds == f, 0]) for f in range(20)]) > 0).all()


def test_sparse_and_dense_targets_give_the_same_folds() -> None:
    import scipy.sparse as sp

    groups, labels = _cohort()
    dense = assign_folds(groups, labels, 20, seed=4)
    sparse = assign_folds(groups, sp.csr_matrix(np.nan_to_num(labels)), 20, seed=4)
    np.testing.assert_array_equal(dense, sparse)


def test_demographic_strata_one_hot() -> None:
    strata = demographic_strata(np.array([25.0, 55.0, np.nan, 85.0]), np.array(["F", "M", None, "X"], dtype=object))
    assert strata.shape == (4, 8 + 3)
    np.testing.assert_array_equal(strata.sum(axis=1), [2, 2, 2, 2])
    assert strata[2, 7] == 1 and strata[2, 10] == 1  # unknown age, unknown gender
    assert strata[0, 8] == 1 and strata[1, 9] == 1


def test_empty_cohort() -> None:
    assert assign_folds(np.zeros(0, dtype=np.int64), np.zeros((0, 3)), 20, 0).shape == (0,)
