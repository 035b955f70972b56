"""`omr` (Online Medical Record): outpatient height, weight, BMI and blood pressure.

The builder takes biometrics from the `omr` row closest to the ECG within ±30 days, so most visits
get a clinic measurement within a few weeks of the ED visit and some patients get extra ones at
other dates; a third of visits have none nearby (missing biometrics, as in MIMIC).
"""

from __future__ import annotations

import numpy as np
import polars as pl
from numpy.typing import NDArray

from ecgkt.mimic.layout import OMR_COLUMNS
from ecgkt.synth.timeline import MINUTES_PER_DAY

FloatArray = NDArray[np.float64]
LBS_PER_KG = 2.20462
CM_PER_INCH = 2.54
VISIT_OMR_RATE = 0.65


def omr_table(subject_id: NDArray[np.int64], visit_patient: NDArray[np.int64], visit_intime: NDArray[np.int64],
              height_cm: FloatArray, weight_kg: FloatArray, fluid_overload: NDArray[np.bool_],
              sbp: FloatArray, dbp: FloatArray, rng: np.random.Generator) -> pl.DataFrame:
    """Rows of (subject_id, chartdate, seq_num, result_name, result_value) as MIMIC spells them.

    `sbp`/`dbp` are the patients' chronic (outpatient) pressures per visit; `fluid_overload` marks
    visits whose weight is temporarily up (decompensated heart failure).
    """
    has = rng.random(visit_patient.size) < VISIT_OMR_RATE
    v = np.nonzero(has)[0]
    # a couple of extra measurements per patient far from any visit
    extra_v = np.nonzero(rng.random(visit_patient.size) < 0.3)[0]
    visits = np.concatenate([v, extra_v])
    offset_days = np.concatenate([rng.integers(-25, 26, v.size), rng.choice([-1, 1], extra_v.size)
                                  * rng.integers(60, 300, extra_v.size)])
    day = (visit_intime[visits] // MINUTES_PER_DAY) + offset_days
    patient = visit_patient[visits]
    n = visits.size
    weight = weight_kg[patient] * np.exp(rng.normal(0.0, 0.02, n)) + np.where(fluid_overload[visits], 3.0, 0.0)
    height = height_cm[patient] + rng.normal(0.0, 0.8, n)
    bmi = weight / (height / 100.0) ** 2
    bp = [f"{round(s)}/{round(d)}" for s, d in zip(
        sbp[visits] + rng.normal(0, 8, n), dbp[visits] + rng.normal(0, 5, n), strict=True)]
    with_height = rng.random(n) < 0.5
    names = ["Weight (Lbs)", "BMI (kg/m2)", "Blood Pressure", "Height (Inches)"]
    values = [np.char.mod("%.1f", weight * LBS_PER_KG), np.char.mod("%.1f", bmi), np.array(bp),
              np.char.mod("%.1f", np.round(height / CM_PER_INCH * 2) / 2)]
    keep = [np.ones(n, bool), rng.random(n) < 0.9, rng.random(n) < 0.85, with_height]
    frames = []
    for name, value, mask in zip(names, values, keep, strict=True):
        frames.append(pl.DataFrame({
            "subject_id": pl.Series(subject_id[patient][mask], dtype=pl.Int64),
            "chartdate": pl.Series(day[mask].astype("datetime64[D]")).cast(pl.Date),
            "result_name": pl.Series([name] * int(mask.sum()), dtype=pl.String),
            "result_value": pl.Series(value[mask].tolist(), dtype=pl.String),
        }))
    frame = pl.concat(frames).sort(["subject_id", "chartdate", "result_name"])
    frame = frame.with_columns((pl.int_range(pl.len()).over(["subject_id", "chartdate", "result_name"]) + 1)
                               .cast(pl.Int64).alias("seq_num"))
    return frame.select(OMR_COLUMNS)
