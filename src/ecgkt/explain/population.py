"""Population baseline that separates direct from confounded links: sparse multivariable regression.

Co-occurrence (phi) links a lab abnormality to every diagnosis that travels with its real cause:
sepsis raises lactate, and because septic patients are often also coded with pneumonia or AKI, phi
links lactate to those too. Regressing each lab abnormality on *all* diagnosis labels at once (L1
logistic regression on the training fold's labels) keeps a link only where the diagnosis adds
information beyond the others — the "direct" link of a population, still an association.

Nested ICD labels (I50, I502, I5023) are near-duplicates: their coefficients are not identifiable and
an L1 fit keeps one of them. Each label therefore takes, per lab, the largest coefficient among the
labels it is a near-duplicate of (phi ≥ `DUPLICATE_PHI` on the training labels), itself included.

Score for one ECG: the (K, P) coefficient matrix, the same for every ECG (`direct`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ecgkt.explain.supporting_labs import RecordOutputs, phi_association

__all__ = ["DUPLICATE_PHI", "L1_C", "DirectBaseline", "fit_direct_links"]

DUPLICATE_PHI = 0.8
L1_C = 0.05  # inverse L1 strength on 0/1 inputs; a fixed, pre-set value (not tuned on the ground truth)
MIN_KNOWN = 30


def fit_direct_links(
    diagnosis_targets: NDArray[np.floating],
    lab_targets: NDArray[np.floating],
    *,
    c: float = L1_C,
    seed: int = 0,
) -> NDArray[np.float32]:
    """(K, P) L1-logistic coefficients of each lab abnormality on all K diagnosis labels.

    Records where a lab was not measured (NaN) are left out of that lab's fit; unknown diagnosis
    targets count as absent. A lab with fewer than `MIN_KNOWN` known records or one class gets zeros.
    """
    from sklearn.linear_model import LogisticRegression

    y = np.nan_to_num(np.asarray(diagnosis_targets, dtype=np.float64), nan=0.0)
    labs = np.asarray(lab_targets, dtype=np.float64)
    n_diag, n_labs = y.shape[1], labs.shape[1]
    beta = np.zeros((n_diag, n_labs), dtype=np.float64)
    for p in range(n_labs):
        known = np.isfinite(labs[:, p])
        target = labs[known, p]
        if known.sum() < MIN_KNOWN or target.min() == target.max():
            continue
        model = LogisticRegression(l1_ratio=1.0, C=c, solver="liblinear", random_state=seed, max_iter=500)
        model.fit(y[known], target.astype(int))
        beta[:, p] = model.coef_[0]
    return share_over_duplicates(beta, phi_association(y, y)).astype(np.float32)


def share_over_duplicates(beta: NDArray[np.floating], label_phi: NDArray[np.floating]) -> NDArray[np.float64]:
    """Each label takes the per-lab maximum coefficient over its near-duplicate labels (phi ≥ DUPLICATE_PHI)."""
    beta = np.asarray(beta, dtype=np.float64)
    duplicates = np.asarray(label_phi) >= DUPLICATE_PHI
    np.fill_diagonal(duplicates, True)
    out = np.empty_like(beta)
    for k in range(beta.shape[0]):
        out[k] = beta[duplicates[k]].max(axis=0)
    return out


class DirectBaseline:
    """score[n, k, p] = direct (L1-logistic) coefficient of diagnosis k for lab p, the same for every ECG."""

    name = "direct"

    def __init__(self, coefficients: NDArray[np.floating]) -> None:
        self.coefficients = np.asarray(coefficients, dtype=np.float32)

    @classmethod
    def fit(
        cls, diagnosis_targets: NDArray[np.floating], lab_targets: NDArray[np.floating], seed: int = 0
    ) -> DirectBaseline:
        return cls(fit_direct_links(diagnosis_targets, lab_targets, seed=seed))

    def scores(self, outputs: RecordOutputs) -> NDArray[np.float32]:
        return np.broadcast_to(self.coefficients, (outputs.n_records, *self.coefficients.shape)).copy()

