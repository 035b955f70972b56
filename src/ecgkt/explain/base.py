"""The vocabulary every explanation method shares: method names, the inputs they see, their error.

Kept apart from the methods (supporting_labs.py) and the fitted explainers (surrogate.py,
association.py) so those modules depend on this one and never on each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, cast, get_args

import numpy as np
from numpy.typing import NDArray

from ecgkt.errors import UserError

__all__ = [
    "BASELINE_METHODS",
    "DEFAULT_TOP_LABS",
    "METHOD_NAMES",
    "PREDICTION_METHODS",
    "ExplanationError",
    "MethodName",
    "MissingExplanationError",
    "RecordOutputs",
    "SupportExplainer",
    "prediction_method",
]

MethodName = Literal[
    "association",
    "gradient",
    "gradient_x_probability",
    "surrogate",
    "surrogate_centered",
    "cooccurrence",
    "probability",
    "random",
]
METHOD_NAMES: tuple[MethodName, ...] = get_args(MethodName)
BASELINE_METHODS: frozenset[str] = frozenset({"cooccurrence", "probability", "random"})
DEFAULT_TOP_LABS = 5
# `ecgkt.explain.patient`'s methods, built from explanation_patient.json (incl. two population ones)
PATIENT_METHODS: tuple[str, ...] = (
    "cooccurrence",
    "direct",
    "association_lift",
    "direct_x_probability",
    "concept_shapley",
    "concept_shapley_direct",
    "embedding_counterfactual",
)
# The methods `ecgkt predict` / `report` / the service offer (the others are evaluation baselines).
PREDICTION_METHODS: tuple[MethodName, ...] = (
    "association",
    "surrogate",
    "surrogate_centered",
    "gradient",
    "gradient_x_probability",
)


class MissingExplanationError(UserError, FileNotFoundError):
    """The bundle lacks the fitted explanation a user asked for (run `ecgkt calibrate`)."""


class ExplanationError(UserError, RuntimeError):
    """An explanation method that cannot run (e.g. a surrogate fitted for other labels)."""


@dataclass(frozen=True)
class RecordOutputs:
    """What the explainers may look at for N records.

    `windows` (N, W, 12, L) is only needed by the gradient methods; probabilities are the raw
    (uncalibrated) window averages, the quantity the surrogate was fitted on.
    """

    lab_probability: NDArray[np.float32]  # (N, P)
    diagnosis_probability: NDArray[np.float32]  # (N, K)
    windows: NDArray[np.float32] | None = None  # (N, W, 12, L)

    @property
    def n_records(self) -> int:
        return int(self.lab_probability.shape[0])


class SupportExplainer(Protocol):
    """A method scoring every (diagnosis, lab) pair of every record: (N, K, P)."""

    name: str

    def scores(self, outputs: RecordOutputs) -> NDArray[np.float32]: ...


def prediction_method(name: str | None) -> MethodName | None:
    """Validate a user's `--explanation` choice (None = the measured default)."""
    if name is None:
        return None
    for method in PREDICTION_METHODS:
        if method == name:
            return method
    if name in PATIENT_METHODS:
        return cast(MethodName, name)
    raise ExplanationError(
        f"explanation method must be one of {', '.join((*PREDICTION_METHODS, *PATIENT_METHODS))}, got {name!r}"
    )
