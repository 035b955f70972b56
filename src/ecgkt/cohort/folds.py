"""Patient-grouped, multi-label stratified folds (MDS-ED: 20 folds, 0–17 train, 18 val, 19 test).

Iterative stratification (Sechidis, Tsoumakas & Vlahavas, 2011), lifted to patient groups: a
patient is assigned as a whole, carrying the number of their records that have each label. The
rarest label still to place is handled first, each of its patients going to the fold that most
lacks that label (ties: the fold that most lacks records, then a seeded random choice). Age bins
and gender enter as extra one-hot "labels", so they are balanced too. No patient can straddle
folds, and the same seed and input always give the same folds.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

AGE_BIN_EDGES: tuple[float, ...] = (30.0, 40.0, 50.0, 60.0, 70.0, 80.0)


def demographic_strata(age: NDArray[np.float64], gender: NDArray[np.object_]) -> NDArray[np.float32]:
    """One-hot age bins (<30, 30s, …, 80+, unknown) and gender (F, M, unknown)."""
    n = len(age)
    finite = np.isfinite(age)
    age_bin = np.where(finite, np.digitize(np.nan_to_num(age), AGE_BIN_EDGES), len(AGE_BIN_EDGES) + 1)
    age_onehot = np.zeros((n, len(AGE_BIN_EDGES) + 2), dtype=np.float32)
    age_onehot[np.arange(n), age_bin] = 1.0
    gender_code = np.array([0 if g == "F" else 1 if g == "M" else 2 for g in gender], dtype=np.int64)
    gender_onehot = np.zeros((n, 3), dtype=np.float32)
    gender_onehot[np.arange(n), gender_code] = 1.0
    return np.concatenate([age_onehot, gender_onehot], axis=1)


def assign_folds(
    groups: NDArray[np.int64], targets: NDArray[np.floating] | sp.spmatrix, n_folds: int, seed: int
) -> NDArray[np.int64]:
    """Fold of every record. `groups`: patient id per record; `targets`: records × labels, dense
    (NaN counts as negative) or sparse."""
    n_records = len(groups)
    if n_records == 0:
        return np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    unique_groups, group_of_record = np.unique(groups, return_inverse=True)
    n_groups = len(unique_groups)
    if sp.issparse(targets):
        positive = sp.csr_matrix(targets, dtype=np.float64)
        positive.data = (positive.data > 0).astype(np.float64)
    else:
        positive = sp.csr_matrix(np.nan_to_num(np.asarray(targets, dtype=np.float64)) > 0, dtype=np.float64)
    membership = sp.csr_matrix(
        (np.ones(n_records), (group_of_record, np.arange(n_records))), shape=(n_groups, n_records)
    )
    group_counts = (membership @ positive).tocsr()  # groups × labels, records with the label
    group_counts.eliminate_zeros()
    by_label = group_counts.tocsc()
    group_sizes = np.bincount(group_of_record, minlength=n_groups).astype(np.float64)

    n_labels = positive.shape[1]
    label_totals = np.asarray(group_counts.sum(axis=0)).ravel()
    desired_label = np.tile(label_totals / n_folds, (n_folds, 1))  # folds × labels
    desired_size = np.full(n_folds, n_records / n_folds)
    remaining = label_totals.copy()
    # a fixed random order of groups makes tie-breaking among equal groups seed-dependent only
    rank = rng.permutation(n_groups)
    fold_of_group = np.full(n_groups, -1, dtype=np.int64)

    def place(group: int, fold: int) -> None:
        fold_of_group[group] = fold
        start, end = group_counts.indptr[group], group_counts.indptr[group + 1]
        labels, counts = group_counts.indices[start:end], group_counts.data[start:end]
        desired_label[fold, labels] -= counts
        remaining[labels] -= counts
        desired_size[fold] -= group_sizes[group]

    def best_fold(scores: list[NDArray[np.float64]]) -> int:
        candidates = np.arange(n_folds)
        for score in scores:
            values = score[candidates]
            candidates = candidates[values >= values.max() - 1e-9]
            if len(candidates) == 1:
                return int(candidates[0])
        return int(rng.choice(candidates))

    active = np.ones(n_labels, dtype=bool)
    while True:
        open_labels = np.flatnonzero(active & (remaining > 1e-9))
        if open_labels.size == 0:
            break
        label = int(open_labels[np.argmin(remaining[open_labels])])
        active[label] = False
        start, end = by_label.indptr[label], by_label.indptr[label + 1]
        members = by_label.indices[start:end]
        members = members[fold_of_group[members] < 0]
        for group in members[np.argsort(rank[members], kind="stable")]:
            place(int(group), best_fold([desired_label[:, label], desired_size]))

    for group in np.flatnonzero(fold_of_group < 0)[np.argsort(rank[fold_of_group < 0], kind="stable")]:
        place(int(group), best_fold([desired_size]))
    return fold_of_group[group_of_record]
