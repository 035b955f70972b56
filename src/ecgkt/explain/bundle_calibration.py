"""One call that makes a trained bundle ready to report on an ECG: calibration + fitted explanations + default.

`calibrate_for_release(bundle, store, ground_truth=None)`:
1. `calibrate_bundle` (explain/calibrate_bundle.py): temperature per head and thresholds per label on
   the validation fold, the association (training fold) and the surrogate (validation fold);
2. the patient-specific explanations (explain/patient_fit.py: direct links on training labels,
   concept read-outs and embedding directions on validation outputs);
3. the bundle's default explanation: with the synthetic cohort's ground truth, the method with the
   highest MAP against the **per-patient** ground truth on the validation fold (the fitted parts use no
   ground truth; only this choice does); without it, `MEASURED_DEFAULT` (co-occurrence), the method that
   won on the synthetic benchmark.
Written into the bundle as `explanation_patient.json` (JSON, atomic). Called by `ecgkt demo` and
`ecgkt benchmark` after training, and by `ecgkt calibrate --ground-truth`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ecgkt.evaluate.calibration import ThresholdRule
from ecgkt.explain.base import PATIENT_METHODS
from ecgkt.explain.calibrate_bundle import CalibrationSummary, calibrate_bundle
from ecgkt.explain.patient import MEASURED_DEFAULT, PATIENT_FILE, explanation_kind, save_patient_explanation
from ecgkt.explain.patient_eval import ALL_METHODS, evaluate_patient_explanations, prepare

__all__ = ["CANDIDATES", "ReleaseCalibration", "calibrate_for_release", "report_commands"]

# Methods the engine can show for one ECG; the population ones (the same list for every ECG of a diagnosis)
# are candidates too, and the report then says so in its one line on the kind of explanation.
CANDIDATES: tuple[str, ...] = tuple(m for m in ALL_METHODS if m == "association" or m in PATIENT_METHODS)


class ReleaseCalibration(BaseModel):
    calibration: CalibrationSummary
    default_method: str
    default_kind: str
    reason: str
    validation_map_per_patient: dict[str, float]
    patient_file: str


def calibrate_for_release(
    bundle_path: Path,
    store_path: Path,
    ground_truth: Path | None = None,
    *,
    rule: ThresholdRule = "youden",
    seed: int = 0,
    surrogate: bool = True,
    progress: Callable[[str], None] | None = None,
) -> ReleaseCalibration:
    """Calibrate, fit every explanation, choose and record the default method (see module docstring)."""
    say = progress or (lambda _message: None)
    if ground_truth is not None:  # check it before anything in the bundle is rewritten
        from ecgkt.explain.ground_truth import load_graph
        from ecgkt.explain.patient_truth import load_patient_drivers

        load_graph(ground_truth)
        load_patient_drivers(ground_truth if ground_truth.is_dir() else ground_truth.parent)
    say("calibrating temperatures and thresholds on the validation fold")
    summary = calibrate_bundle(bundle_path, store_path, rule=rule, seed=seed, surrogate=surrogate)
    ctx = prepare(Path(bundle_path), Path(store_path), ground_truth, split="val", max_records=None, seed=seed,
                  progress=say)
    scores: dict[str, float] = {}
    default, reason = MEASURED_DEFAULT, "no ground truth: the method that won on the synthetic benchmark"
    if ctx.per_patient is not None:
        result: dict[str, Any] = evaluate_patient_explanations(
            Path(bundle_path), Path(store_path), ground_truth, methods=CANDIDATES, seed=seed, n_resamples=200,
            stability_seeds=(), context=ctx, diagnostics=False,
        )
        for name, entry in result["methods"].items():
            value = entry["per_patient"]["map"]["value"]
            if value == value:  # not NaN
                scores[name] = float(value)
        if scores:
            default = max(scores, key=lambda name: scores[name])
            reason = (
                f"highest MAP against the per-patient ground truth on the validation fold "
                f"({scores[default]:.3f}; {result['methods'][default]['per_patient']['n_cases']} cases)"
            )
    fitted = ctx.fitted.model_copy(update={"default_method": default, "default_reason": reason})
    path = save_patient_explanation(Path(bundle_path), fitted)
    return ReleaseCalibration(
        calibration=summary,
        default_method=default,
        default_kind=explanation_kind(default),
        reason=reason,
        validation_map_per_patient=scores,
        patient_file=str(path if path.name == PATIENT_FILE else Path(bundle_path) / PATIENT_FILE),
    )


def report_commands(bundle: Path, store_path: Path, cohort: Path) -> list[str]:
    """Commands that report on one test-fold ECG of a synthetic cohort (printed at the end of `ecgkt demo`)."""
    from ecgkt.store import Store

    store = Store.open(store_path)
    test = store.split_indices("test")
    row = int(test[0]) if len(test) else 0
    record = cohort / "mimic-iv-ecg" / str(store.records["path"][row])
    return [
        f"ecgkt predict {bundle} {record}",
        f"ecgkt report {bundle} {record} --out report.html",
    ]
