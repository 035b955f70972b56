"""Per-patient ground truth for explanations: which lab abnormalities a diagnosis causes in *this* ECG.

`ecgkt synth` writes `ground_truth/patient_drivers.parquet` (synth/counterfactuals.py): for every ECG
in a stay and every true condition, the lab abnormalities that disappear when that condition is
switched off with all other random draws fixed. A bundle diagnosis label maps to the latent states
whose ICD-10 codes fall under it (as in explain/ground_truth.py); its true drivers in one ECG are the
union, over those states that are true for the ECG, of the abnormalities that disappear, restricted
to the bundle's lab labels. A (record, diagnosis) pair with no such driver (state false: a false
positive call; or present without a lab effect in this patient) has no per-patient truth and is not
scored against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from ecgkt.explain.ground_truth import GroundTruthError

__all__ = ["PATIENT_DRIVERS_FILE", "PatientTruth", "load_patient_drivers", "patient_truth", "states_of_labels"]

PATIENT_DRIVERS_FILE = "patient_drivers.parquet"
REQUIRED_COLUMNS = ("study_id", "state", "kind", "target")


def load_patient_drivers(path: Path) -> pl.DataFrame:
    """The per-patient drivers table of a ground-truth folder (or the parquet file itself)."""
    file = path / PATIENT_DRIVERS_FILE if path.is_dir() else path
    if not file.is_file():
        raise GroundTruthError(
            f"{file}: no per-patient ground truth (written by `ecgkt synth` as ground_truth/{PATIENT_DRIVERS_FILE}; "
            "re-generate the cohort with this version)"
        )
    try:
        frame = pl.read_parquet(file)
    except (OSError, pl.exceptions.PolarsError) as error:
        raise GroundTruthError(f"{file}: unreadable per-patient ground truth ({error})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise GroundTruthError(f"{file}: per-patient ground truth lacks columns {missing}")
    return frame


def states_of_labels(graph: dict[str, Any], diagnosis_labels: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Diagnosis label → latent states with an ICD-10 code under it (labels with none are left out)."""
    codes_of_state: dict[str, list[str]] = {}
    for entry in graph["icd_codes"]:
        codes_of_state.setdefault(str(entry["state"]), []).extend(str(c) for c in entry.get("icd10_undotted", []))
    out: dict[str, tuple[str, ...]] = {}
    for label in diagnosis_labels:
        key = label.replace(".", "").upper()
        states = tuple(sorted(s for s, codes in codes_of_state.items() if any(c.startswith(key) for c in codes)))
        if states:
            out[label] = states
    return out


@dataclass(frozen=True)
class PatientTruth:
    """relevant[k]: (N, P) bool, the true drivers of diagnosis k in each of the N records; has_state[k]: (N,)."""

    relevant: dict[int, NDArray[np.bool_]]
    has_state: dict[int, NDArray[np.bool_]]

    def cases(self, k: int) -> NDArray[np.int64]:
        """Records where diagnosis k has at least one true driver in this patient."""
        if k not in self.relevant:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(self.relevant[k].any(axis=1)).astype(np.int64)


def patient_truth(
    drivers: pl.DataFrame,
    study_ids: NDArray[np.integer],
    graph: dict[str, Any],
    diagnosis_labels: Sequence[str],
    lab_labels: Sequence[str],
) -> PatientTruth:
    """Per-record driver masks for every diagnosis label that maps to a latent state."""
    try:
        label_states = states_of_labels(graph, diagnosis_labels)
    except (KeyError, TypeError, AttributeError) as error:
        raise GroundTruthError(f"malformed ground-truth graph: {type(error).__name__} {error}") from None
    row_of_study = {int(s): i for i, s in enumerate(np.asarray(study_ids).tolist())}
    lab_index = {name: j for j, name in enumerate(lab_labels)}
    n, n_labs = len(row_of_study), len(lab_labels)
    wanted = drivers.filter(pl.col("study_id").is_in(list(row_of_study)))
    state_rows = wanted.filter(pl.col("kind") == "state")
    lab_rows = wanted.filter((pl.col("kind") == "lab") & pl.col("target").is_in(list(lab_index)))
    per_state: dict[str, NDArray[np.bool_]] = {}
    present: dict[str, NDArray[np.bool_]] = {}
    for key, group in lab_rows.group_by("state"):
        mask = np.zeros((n, n_labs), dtype=bool)
        rows = [row_of_study[int(s)] for s in group["study_id"].to_list()]
        cols = [lab_index[t] for t in group["target"].to_list()]
        mask[rows, cols] = True
        per_state[str(key[0])] = mask
    for key, group in state_rows.group_by("state"):
        flag = np.zeros(n, dtype=bool)
        flag[[row_of_study[int(s)] for s in group["study_id"].to_list()]] = True
        present[str(key[0])] = flag
    relevant: dict[int, NDArray[np.bool_]] = {}
    has_state: dict[int, NDArray[np.bool_]] = {}
    for k, label in enumerate(diagnosis_labels):
        states = label_states.get(label)
        if not states:
            continue
        mask = np.zeros((n, n_labs), dtype=bool)
        flag = np.zeros(n, dtype=bool)
        for state in states:
            if state in per_state:
                mask |= per_state[state]
            if state in present:
                flag |= present[state]
        relevant[k] = mask
        has_state[k] = flag
    return PatientTruth(relevant=relevant, has_state=has_state)
