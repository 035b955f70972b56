"""Which predicted lab abnormalities support a predicted diagnosis: the explanation methods.

The paper lists the lab abnormalities predicted from the same ECG embedding h_x but cannot say which
of them matter for which diagnosis. Every method here produces, for each record, a support score for
every (diagnosis k, lab abnormality p) pair, shape (N, K, P); a higher score means "lab p supports
diagnosis k in this record". They are compared by `ecgkt explain-eval` (explain/evaluation.py) and
the default is the one that measured best (docs/explanations.md):

- `association` (the default): phi(diagnosis k, lab p) in the training fold × the predicted
  probability of lab p for this ECG (explain/association.py): the lab prediction comes from the
  shared embedding, the diagnosis ↔ lab link from the cohort the model was trained on.
- `gradient`: cosine between ∂diag_logit_k/∂h_x and ∂lab_logit_p/∂h_x — "moving the embedding
  towards diagnosis k also moves it towards abnormality p". Needs the torch heads; per record.
- `gradient_x_probability`: the same cosine times the predicted lab probability, so an abnormality
  the model does not predict for this patient cannot be offered as support.
- `surrogate`: a sparse (L1) linear model fitted on the validation fold, predicted lab probabilities →
  diagnosis logit; score = coefficient × lab probability (the lab's contribution to the surrogate's
  logit). Works from lab probabilities alone, so also behind an ONNX runner.
- `surrogate_centered`: the same surrogate, score = coefficient × (lab probability − its mean on the
  validation fold): the contribution relative to a typical patient, so a lab the model predicts
  *less* than usual cannot support the diagnosis merely by having a large coefficient.
- baselines: `probability` (the paper: rank by predicted lab probability, the same for every
  diagnosis), `cooccurrence` (label association in the training fold, the same for every record) and
  `random`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from ecgkt.explain.base import (
    BASELINE_METHODS,
    DEFAULT_TOP_LABS,
    METHOD_NAMES,
    ExplanationError,
    MethodName,
    RecordOutputs,
    SupportExplainer,
)

if TYPE_CHECKING:
    from ecgkt.bundle import EcgOnlyModel
    from ecgkt.explain.surrogate import LabSurrogate

__all__ = [
    "BASELINE_METHODS",
    "DEFAULT_TOP_LABS",
    "METHOD_NAMES",
    "CooccurrenceBaseline",
    "ExplanationError",
    "GradientAlignment",
    "MethodName",
    "ProbabilityBaseline",
    "RandomBaseline",
    "RecordOutputs",
    "Support",
    "SupportExplainer",
    "SurrogateExplainer",
    "phi_association",
    "ranked_rows",
    "top_supporting_labs",
    "top_supporting_labs_rows",
]


@dataclass(frozen=True)
class Support:
    """One supporting lab abnormality of one diagnosis (index into the bundle's lab labels)."""

    lab_index: int
    score: float


def top_supporting_labs(
    scores: NDArray[np.floating], top_k: int = DEFAULT_TOP_LABS, min_score: float = 0.0
) -> list[Support]:
    """The `top_k` highest-scoring labs of one diagnosis, keeping only scores above `min_score`.

    Only positive support is offered: a negative score means the lab argues *against* the diagnosis.
    """
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    chosen = [int(i) for i in order[:top_k] if float(scores[i]) > min_score]
    return [Support(lab_index=i, score=float(scores[i])) for i in chosen]


def top_supporting_labs_rows(
    scores: NDArray[np.floating], top_k: int = DEFAULT_TOP_LABS, min_score: float = 0.0
) -> list[list[Support]]:
    """`top_supporting_labs` for every row of a (R, P) score matrix with one sort instead of R.

    Same order (stable sort of −score, ties by lab index), same filter, same values.
    """
    return [[Support(lab_index=i, score=score) for i, score in row] for row in ranked_rows(scores, top_k, min_score)]


def ranked_rows(
    scores: NDArray[np.floating], top_k: int = DEFAULT_TOP_LABS, min_score: float = 0.0
) -> list[list[tuple[int, float]]]:
    """(lab index, score) pairs of `top_supporting_labs_rows` without building `Support` objects.

    The prediction engine turns them straight into its result's fields: one sort for all positive
    diagnoses of a record and no intermediate objects keep the explanation step well under a millisecond.
    """
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"expected a (rows, labs) score matrix, got shape {values.shape}")
    order = np.argsort(-values, axis=1, kind="stable")[:, :top_k]
    picked = np.take_along_axis(np.asarray(scores), order, axis=1)
    keep = np.take_along_axis(values, order, axis=1) > min_score
    return [
        [(index, score) for index, score, kept in zip(row_order, row_scores, row_keep, strict=True) if kept]
        for row_order, row_scores, row_keep in zip(order.tolist(), picked.tolist(), keep.tolist(), strict=True)
    ]


# ---- (a) gradient alignment in the embedding -------------------------------------------------


class GradientAlignment:
    """Cosine of the heads' gradients w.r.t. h_x, averaged over a record's windows.

    The heads are small MLPs on h_x, so their Jacobians for all K + P outputs cost two `jacrev`
    calls per chunk of windows; the S4 encoder runs once, without gradients.
    """

    def __init__(self, model: EcgOnlyModel, weight_by_probability: bool = False, chunk_records: int = 64) -> None:
        self.model = model
        self.weight_by_probability = weight_by_probability
        self.chunk_records = chunk_records
        self.name: str = "gradient_x_probability" if weight_by_probability else "gradient"

    def scores(self, outputs: RecordOutputs) -> NDArray[np.float32]:
        if outputs.windows is None:
            raise ExplanationError(f"{self.name}: needs the ECG windows, not only the probabilities")
        n = outputs.n_records
        pieces = [
            self._alignment(outputs.windows[start : start + self.chunk_records])
            for start in range(0, n, self.chunk_records)
        ]
        alignment = np.concatenate(pieces, axis=0)
        if self.weight_by_probability:
            alignment = alignment * outputs.lab_probability[:, None, :]
        return alignment.astype(np.float32)

    def _alignment(self, windows: NDArray[np.float32]) -> NDArray[np.float32]:
        model = self.model
        n_records, n_windows = windows.shape[:2]
        flat = torch.from_numpy(np.ascontiguousarray(windows.reshape(n_records * n_windows, *windows.shape[2:])))
        with torch.no_grad():
            h = model.encode(flat.to(torch.float32))
        diag_grad = _per_window_gradients(model.diagnosis_head, h)
        lab_grad = _per_window_gradients(model.lab_head, h)
        # Average each record's window gradients: the prediction itself averages over windows.
        diag_grad = diag_grad.view(diag_grad.shape[0], n_records, n_windows, -1).mean(2)
        lab_grad = lab_grad.view(lab_grad.shape[0], n_records, n_windows, -1).mean(2)
        diag_unit = torch.nn.functional.normalize(diag_grad, dim=-1)  # (K, N, d)
        lab_unit = torch.nn.functional.normalize(lab_grad, dim=-1)  # (P, N, d)
        cosine = torch.einsum("knd,pnd->nkp", diag_unit, lab_unit)
        return cosine.detach().numpy().astype(np.float32)


def _per_window_gradients(head: nn.Module, h: Tensor) -> Tensor:
    """(out, B, d): gradient of each output logit w.r.t. each window's embedding.

    Windows are independent through the head, so the Jacobian of the batch-summed logits gives
    every window's own gradient in one reverse pass per output.
    """
    was_training = head.training
    head.eval()
    try:
        jacobian: Tensor = torch.func.jacrev(lambda x: head(x).sum(0))(h)
        return jacobian
    finally:
        head.train(was_training)


# ---- (b) sparse surrogate -------------------------------------------------------------------


class SurrogateExplainer:
    """score[n, k, p] = coefficient[k, p] × lab_probability[n, p] (minus its mean when centred)."""

    def __init__(self, surrogate: LabSurrogate, centered: bool = False) -> None:
        from ecgkt.explain.surrogate import SurrogateArrays

        self.surrogate = surrogate
        self.centered = centered
        self.name: str = "surrogate_centered" if centered else "surrogate"
        # The JSON lists → arrays conversion costs ~0.5 ms for 100 × 90 labels: once, not per record.
        self._arrays = SurrogateArrays.of(surrogate)

    def scores(self, outputs: RecordOutputs) -> NDArray[np.float32]:
        return self._arrays.contributions(outputs.lab_probability, centered=self.centered)


# ---- (c) baselines --------------------------------------------------------------------------


class ProbabilityBaseline:
    """The paper's explanation: the concurrent lab predictions, ranked by probability."""

    name = "probability"

    def __init__(self, n_diagnoses: int) -> None:
        self.n_diagnoses = n_diagnoses

    def scores(self, outputs: RecordOutputs) -> NDArray[np.float32]:
        probs = outputs.lab_probability.astype(np.float32)
        return np.repeat(probs[:, None, :], self.n_diagnoses, axis=1)


class CooccurrenceBaseline:
    """Label association in the training fold: phi coefficient of (diagnosis k, lab p) targets."""

    name = "cooccurrence"

    def __init__(self, association: NDArray[np.floating]) -> None:
        self.association = np.asarray(association, dtype=np.float32)

    @classmethod
    def fit(cls, diagnosis_targets: NDArray[np.floating], lab_targets: NDArray[np.floating]) -> CooccurrenceBaseline:
        return cls(phi_association(diagnosis_targets, lab_targets))

    def scores(self, outputs: RecordOutputs) -> NDArray[np.float32]:
        return np.broadcast_to(self.association, (outputs.n_records, *self.association.shape)).copy()


class RandomBaseline:
    """Independent uniform scores per record: the chance level of every ranking metric."""

    name = "random"

    def __init__(self, n_diagnoses: int, seed: int = 0) -> None:
        self.n_diagnoses = n_diagnoses
        self.rng = np.random.default_rng(seed)

    def scores(self, outputs: RecordOutputs) -> NDArray[np.float32]:
        shape = (outputs.n_records, self.n_diagnoses, outputs.lab_probability.shape[1])
        return self.rng.random(shape, dtype=np.float32)


def phi_association(diagnosis_targets: NDArray[np.floating], lab_targets: NDArray[np.floating]) -> NDArray[np.float32]:
    """(K, P) phi (Pearson on 0/1) over records where both targets are known; 0 where undefined.

    Lab targets are NaN when no value was measured, so each pair uses its own set of records.
    """
    y = np.asarray(diagnosis_targets, dtype=np.float64)
    m = np.asarray(lab_targets, dtype=np.float64)
    y_known, m_known = np.isfinite(y), np.isfinite(m)
    y0, m0 = np.where(y_known, y, 0.0), np.where(m_known, m, 0.0)
    yk, mk = y_known.astype(np.float64), m_known.astype(np.float64)
    n = yk.T @ mk  # records where both known
    sum_y = y0.T @ mk
    sum_m = yk.T @ m0
    sum_ym = y0.T @ m0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_y, mean_m = sum_y / n, sum_m / n
        covariance = sum_ym / n - mean_y * mean_m
        # y and m are binary, so E[y²] = E[y]
        denominator = np.sqrt(mean_y * (1 - mean_y) * mean_m * (1 - mean_m))
        phi = covariance / denominator
    return np.nan_to_num(phi, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
