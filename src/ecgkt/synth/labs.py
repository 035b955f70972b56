"""`labevents` and `d_labitems`: which labs get drawn, when, and what the analyser reports.

Missingness is informative, as in real EDs: each panel (basic metabolic panel, blood count, blood
gas, troponin, …) is ordered with a probability that depends on the clinical picture (a blood gas
for the breathless, lactate for the septic, coagulation for the anticoagulated or cirrhotic). Most
first draws happen within the 90-minute window, some later; abnormal results get repeated
(potassium, lactate, haemoglobin), troponin is repeated after ~3 h, and a few patients have
outpatient draws days before the visit. Values come from `lab_truth` at the draw time plus
analytical noise, a few potassium samples are haemolysed (falsely high), and a handful of rows carry
MIMIC's de-identified free text `___` instead of a number.

Everything is vectorised over draw events; no Python loop runs per row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from numpy.typing import NDArray

from ecgkt.mimic.labs import LAB_BY_NAME, LAB_ITEMS, LabItem
from ecgkt.mimic.layout import D_LABITEMS_COLUMNS, LABEVENTS_COLUMNS
from ecgkt.synth import lab_truth
from ecgkt.synth.columns import nullable_ids, strings, with_nulls
from ecgkt.synth.timeline import MINUTES_PER_DAY, minutes_to_datetime

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

# Items MIMIC reports alongside the protocol's 45 that the builder must ignore (real d_labitems ids).
EXTRA_ITEMS: tuple[LabItem, ...] = (
    LabItem("Anion Gap", 50868, "Anion Gap", "Blood", "Chemistry", "mEq/L", 8.0, 20.0, decimals=0),
    LabItem("MCH", 51248, "MCH", "Blood", "Hematology", "pg", 26.0, 32.0),
)
ALL_ITEMS: dict[str, LabItem] = {**LAB_BY_NAME, **{i.name: i for i in EXTRA_ITEMS}}


@dataclass(frozen=True)
class Panel:
    """A set of items drawn in one specimen; ordered with P = sigmoid(intercept + Σ coef × feature)."""

    name: str
    items: tuple[str, ...]
    intercept: float
    coefficients: Mapping[str, float] = field(default_factory=dict)
    requires: str | None = None  # only ordered together with this panel
    turnaround_min: tuple[float, float] = (30.0, 70.0)


PANELS: tuple[Panel, ...] = (
    Panel("bmp", ("Sodium", "Potassium", "Chloride", "Bicarbonate", "Urea Nitrogen", "Creatinine", "Glucose",
                  "Anion Gap"), 1.6,
          {"severity": 0.6, "ckd": 0.8, "diabetes": 0.5, "minor": -1.2}),
    Panel("cbc", ("White Blood Cells", "Hemoglobin", "Hematocrit", "Platelet Count", "Red Blood Cells", "RDW",
                  "MCH"), 1.5,
          {"severity": 0.6, "infection": 0.5, "gi_bleed": 1.5, "minor": -1.2}, turnaround_min=(15.0, 45.0)),
    Panel("differential", ("Neutrophils", "Lymphocytes", "Eosinophils", "Basophils", "Absolute Lymphocyte Count",
                           "Absolute Eosinophil Count", "Absolute Basophil Count"), 0.3,
          {"infection": 1.0, "sepsis": 1.0}, requires="cbc", turnaround_min=(20.0, 60.0)),
    Panel("bands", ("Bands",), -1.8, {"sepsis": 1.5, "infection": 0.5}, requires="differential",
          turnaround_min=(40.0, 90.0)),
    Panel("ca_mg_phos", ("Calcium Total", "Magnesium", "Phosphate"), -0.6,
          {"ckd": 0.8, "atrial_fibrillation": 0.5, "heart_failure": 0.6, "alcohol_use": 0.5, "severity": 0.3,
           "malignancy": 0.5}),
    Panel("liver", ("ALT", "AST", "Alkaline Phosphatase", "Bilirubin Total", "Albumin"), -1.0,
          {"liver_disease": 1.2, "abdominal": 0.9, "sepsis": 0.6, "alcohol_use": 0.4}),
    Panel("direct_bilirubin", ("Bilirubin Direct",), -1.8, {"liver_disease": 1.5}, requires="liver"),
    Panel("coagulation", ("PT", "INR(PT)", "PTT"), -1.1,
          {"anticoagulant": 1.2, "liver_disease": 1.0, "gi_bleed": 0.8, "acute_ischaemia": 0.6, "sepsis": 0.5,
           "atrial_fibrillation": 0.4}, turnaround_min=(25.0, 60.0)),
    Panel("fibrinogen", ("Fibrinogen",), -2.8, {"sepsis": 1.2, "liver_disease": 0.8, "gi_bleed": 0.8},
          requires="coagulation"),
    Panel("troponin", ("Troponin T",), -0.3,
          {"chest": 1.8, "dyspnoea": 0.9, "heart_failure": 0.8, "atrial_fibrillation": 0.6, "syncope": 0.5,
           "age10": 0.4, "minor": -1.0}, turnaround_min=(40.0, 80.0)),
    Panel("ck", ("Creatine Kinase", "CK-MB"), -2.2, {"chest": 1.0, "acute_ischaemia": 0.8, "fall": 0.6},
          turnaround_min=(40.0, 80.0)),
    Panel("lactate", ("Lactate",), -1.8,
          {"sepsis": 2.2, "infection": 1.0, "respiratory_failure": 0.7, "gi_bleed": 0.5,
           "hyperglycaemic_crisis": 0.4}, turnaround_min=(5.0, 20.0)),
    Panel("blood_gas", ("pH", "pCO2", "Base Excess", "O2 Saturation"), -2.4,
          {"respiratory_failure": 2.5, "sepsis": 1.0, "copd": 0.8, "hyperglycaemic_crisis": 1.5,
           "acute_heart_failure": 0.6}, turnaround_min=(5.0, 20.0)),
    Panel("free_calcium", ("Free Calcium",), 0.0, {"ckd": 0.6}, requires="blood_gas", turnaround_min=(5.0, 20.0)),
    Panel("co_oximetry", ("Carboxyhemoglobin",), -0.8, {"smoker": 0.3}, requires="blood_gas",
          turnaround_min=(5.0, 20.0)),
    Panel("crp", ("C-Reactive Protein",), -2.6, {"infection": 1.2, "sepsis": 0.5, "copd": 0.3},
          turnaround_min=(60.0, 180.0)),
)
PANEL_INDEX = {p.name: i for i, p in enumerate(PANELS)}

# Analytical noise: absolute SD for these labs, relative (CV) for the rest.
ABSOLUTE_NOISE: dict[str, float] = {
    "pH": 0.01, "Base Excess": 0.8, "O2 Saturation": 0.6, "pCO2": 1.5, "Sodium": 1.0, "Chloride": 1.0,
    "Bicarbonate": 1.0, "Potassium": 0.08, "Calcium Total": 0.1, "Free Calcium": 0.02, "Hemoglobin": 0.15,
    "Hematocrit": 0.5, "Neutrophils": 2.0, "Lymphocytes": 2.0, "Anion Gap": 1.0, "Magnesium": 0.05,
    "Phosphate": 0.1, "Albumin": 0.1,
}
DEFAULT_CV = 0.03
HAEMOLYSIS_RATE = 0.03
UNREPORTABLE_RATE = 0.002  # value "___", valuenum empty
FIRST_DRAW_LATE_RATE = 0.08  # first blood draw only after the 90-minute window
ADD_ON_RATE = 0.15  # a panel ordered later in the stay rather than with the first draw
OUTPATIENT_DRAW_RATE = 0.12


def order_features(flags: Mapping[str, BoolArray], severity: FloatArray, problem: NDArray[np.object_],
                   age: FloatArray) -> dict[str, FloatArray]:
    """What a clinician sees when deciding on labs: conditions, severity and the presenting problem."""
    feats = {name: v.astype(np.float64) for name, v in flags.items()}
    feats["severity"] = severity
    feats["age10"] = (age - 60.0) / 10.0
    feats["minor"] = np.isin(problem, ["laceration", "back_pain", "headache", "anxiety", "other"]).astype(float)
    feats["chest"] = np.isin(problem, ["chest_pain_cardiac", "chest_pain_other", "palpitations"]).astype(float)
    feats["dyspnoea"] = (problem == "dyspnoea").astype(float)
    feats["syncope"] = np.isin(problem, ["syncope", "dizziness"]).astype(float)
    feats["abdominal"] = np.isin(problem, ["abdominal_pain", "vomiting", "gi_bleed"]).astype(float)
    feats["fall"] = np.isin(problem, ["fall", "intoxication"]).astype(float)
    return feats


def order_panels(features: Mapping[str, FloatArray], rng: np.random.Generator) -> BoolArray:
    """visits × panels: which panels each visit gets."""
    n = features["severity"].size
    ordered = np.zeros((n, len(PANELS)), dtype=bool)
    for j, panel in enumerate(PANELS):
        logit = np.full(n, panel.intercept)
        for name, coef in panel.coefficients.items():
            logit += coef * features[name]
        drawn = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))
        if panel.requires is not None:
            drawn &= ordered[:, PANEL_INDEX[panel.requires]]
        ordered[:, j] = drawn
    return ordered


@dataclass
class DrawEvents:
    """One row per specimen: a panel drawn for a visit at `minutes` after intime (NaN = outpatient)."""

    visit: NDArray[np.int64]
    panel: NDArray[np.int64]
    minutes: FloatArray
    outpatient: BoolArray


def schedule_draws(ordered: BoolArray, flags: Mapping[str, BoolArray], arrival: Mapping[str, FloatArray],
                   rng: np.random.Generator) -> DrawEvents:
    """First draw, add-on draws, clinically driven repeats and outpatient draws."""
    n_visits = ordered.shape[0]
    first = np.where(rng.random(n_visits) < FIRST_DRAW_LATE_RATE, rng.uniform(91.0, 240.0, n_visits),
                     np.minimum(4.0 + rng.gamma(2.0, 14.0, n_visits), 89.0))
    v_idx, p_idx = np.nonzero(ordered)
    add_on = rng.random(v_idx.size) < ADD_ON_RATE
    minutes = first[v_idx] + np.where(add_on, rng.uniform(45.0, 240.0, v_idx.size), 0.0)
    visits, panels, times = [v_idx], [p_idx], [minutes]

    def repeat(panel: str, wanted: BoolArray, probability: float, delay: tuple[float, float]) -> None:
        j = PANEL_INDEX[panel]
        base = np.asarray(ordered[:, j] & wanted & (rng.random(n_visits) < probability), dtype=bool)
        v = np.flatnonzero(base)
        visits.append(v)
        panels.append(np.full(v.size, j))
        times.append(first[v] + rng.uniform(*delay, v.size))

    k = arrival["Potassium"]
    repeat("bmp", (k > 5.5) | (k < 3.0) | (arrival["Glucose"] > 300.0), 0.6, (120.0, 300.0))
    repeat("troponin", np.ones(n_visits, dtype=bool), 0.45, (150.0, 240.0))
    repeat("troponin", flags["acute_ischaemia"], 0.9, (150.0, 240.0))
    repeat("lactate", arrival["Lactate"] > 2.0, 0.7, (90.0, 240.0))
    repeat("cbc", flags["gi_bleed"] | (arrival["Hemoglobin"] < 8.0), 0.6, (180.0, 360.0))
    repeat("blood_gas", flags["respiratory_failure"], 0.5, (60.0, 180.0))

    # outpatient chemistry and blood count days before the visit (chronic state only)
    out_v = np.flatnonzero(np.asarray(rng.random(n_visits) < OUTPATIENT_DRAW_RATE))
    out_days = rng.uniform(3.0, 60.0, out_v.size)
    for panel in ("bmp", "cbc"):
        visits.append(out_v)
        panels.append(np.full(out_v.size, PANEL_INDEX[panel]))
        times.append(-out_days * MINUTES_PER_DAY)
    visit = np.concatenate(visits).astype(np.int64)
    n_out = 2 * out_v.size
    outpatient = np.zeros(visit.size, dtype=bool)
    outpatient[visit.size - n_out:] = True
    return DrawEvents(visit=visit, panel=np.concatenate(panels).astype(np.int64),
                      minutes=np.floor(np.concatenate(times)), outpatient=outpatient)


def _provider_pool(rng: np.random.Generator, size: int = 300) -> NDArray[np.object_]:
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))
    digits = rng.integers(0, 10, (size, 3))
    tail = letters[rng.integers(0, letters.size, (size, 2))]
    return np.array([f"P{''.join(map(str, d))}{''.join(t)}" for d, t in zip(digits, tail, strict=True)], dtype=object)


def _format_values(values: FloatArray, decimals: NDArray[np.int64]) -> NDArray[np.object_]:
    out = np.empty(values.size, dtype=object)
    for d in np.unique(decimals):
        rows = decimals == d
        out[rows] = np.char.mod(f"%.{int(d)}f", values[rows]).astype(object)
    return out


@dataclass
class LabTables:
    labevents: pl.DataFrame
    d_labitems: pl.DataFrame


def labevents_table(events: DrawEvents, chronic: FloatArray, arrival: FloatArray, subject_id: NDArray[np.int64],
                    hadm_id: NDArray[np.int64], intime: NDArray[np.int64], outtime: NDArray[np.int64],
                    admitted: BoolArray, female: BoolArray, rng: np.random.Generator) -> pl.DataFrame:
    """Expand draw events into labevents rows with MIMIC's columns, units, ranges and flags."""
    # labs drawn after a discharged patient left the ED do not happen
    in_ed_ok = events.outpatient | admitted[events.visit] | (
        intime[events.visit] + events.minutes <= outtime[events.visit])
    visit, panel = events.visit[in_ed_ok], events.panel[in_ed_ok]
    minutes, outpatient = events.minutes[in_ed_ok], events.outpatient[in_ed_ok]
    truth = lab_truth.values_at(chronic, arrival, visit, np.where(outpatient, np.nan, minutes))
    haemolysed = (panel == PANEL_INDEX["bmp"]) & (rng.random(visit.size) < HAEMOLYSIS_RATE)
    truth["Potassium"] = truth["Potassium"] + np.where(haemolysed, rng.uniform(0.4, 1.5, visit.size), 0.0)
    specimen = rng.permutation(np.arange(visit.size, dtype=np.int64)) + 10_000_000
    specimen = _spread_ids(specimen, rng)
    priority = np.where(outpatient, "ROUTINE",
                        rng.choice(np.array(["STAT", "ROUTINE", None], dtype=object), visit.size,
                                   p=[0.85, 0.1, 0.05])).astype(object)
    providers = _provider_pool(rng)
    provider = with_nulls(providers[rng.integers(0, providers.size, visit.size)], rng.random(visit.size) < 0.35)

    pieces: list[dict[str, NDArray[np.generic]]] = []
    for j, spec in enumerate(PANELS):
        ev = np.nonzero(panel == j)[0]
        if ev.size == 0:
            continue
        for name in spec.items:
            item = ALL_ITEMS[name]
            true = truth[name][ev]
            noise_sd = ABSOLUTE_NOISE.get(name)
            measured = (true + rng.normal(0.0, noise_sd, ev.size) if noise_sd is not None
                        else true * np.exp(rng.normal(0.0, DEFAULT_CV, ev.size)))
            if name in lab_truth.BOUNDS:
                measured = np.clip(measured, *lab_truth.BOUNDS[name])
            measured = np.round(measured, item.decimals)
            turnaround = rng.uniform(*spec.turnaround_min, ev.size)
            pieces.append({
                "event": ev, "itemid": np.full(ev.size, item.itemid), "valuenum": measured,
                "decimals": np.full(ev.size, item.decimals), "storetime_delay": turnaround,
            })
    event = np.concatenate([p["event"] for p in pieces])
    itemid = np.concatenate([p["itemid"] for p in pieces])
    valuenum = np.concatenate([p["valuenum"] for p in pieces])
    decimals = np.concatenate([p["decimals"] for p in pieces])
    delay = np.concatenate([p["storetime_delay"] for p in pieces])
    n = event.size
    value = _format_values(valuenum, decimals)
    troponin_low = (itemid == LAB_BY_NAME["Troponin T"].itemid) & (valuenum < 0.01)
    value[troponin_low] = "<0.01"
    valuenum = np.where(troponin_low, 0.01, valuenum)

    ref_low, ref_high, unit = _item_arrays(itemid, female[visit[event]])
    outside_range = (valuenum < ref_low) | (valuenum > ref_high)
    flag = with_nulls(np.full(n, "abnormal", dtype=object), ~outside_range)
    haemolysed_k = haemolysed[event] & (itemid == LAB_BY_NAME["Potassium"].itemid)
    comments = with_nulls(np.full(n, "HEMOLYSIS FALSELY ELEVATES K", dtype=object), ~haemolysed_k)
    unreportable = rng.random(n) < UNREPORTABLE_RATE
    value[unreportable] = "___"
    comments[unreportable] = "___"
    valuenum = np.where(unreportable, np.nan, valuenum)
    flag[unreportable] = None

    v = visit[event]
    chart_min = np.where(outpatient[event],
                         intime[v] + minutes[event].astype(np.int64) + 9 * 60,  # morning clinic draws
                         intime[v] + minutes[event].astype(np.int64))
    store_min = chart_min + np.floor(delay).astype(np.int64)
    hadm = np.where(outpatient[event] | ~admitted[v], -1, hadm_id[v])
    order = np.lexsort((itemid, chart_min, subject_id[v]))
    frame = pl.DataFrame({
        "labevent_id": np.arange(1, n + 1, dtype=np.int64),
        "subject_id": subject_id[v][order],
        "hadm_id": nullable_ids(hadm[order]),
        "specimen_id": specimen[event][order],
        "itemid": itemid[order],
        "order_provider_id": strings(provider[event][order]),
        "charttime": minutes_to_datetime(chart_min[order]),
        "storetime": minutes_to_datetime(store_min[order]),
        "value": strings(value[order]),
        "valuenum": valuenum[order],
        "valueuom": strings(unit[order]),
        "ref_range_lower": ref_low[order],
        "ref_range_upper": ref_high[order],
        "flag": strings(flag[order]),
        "priority": strings(priority[event][order]),
        "comments": strings(comments[order]),
    })
    frame = frame.with_columns(
        pl.col("valuenum").fill_nan(None), pl.col("ref_range_lower").fill_nan(None),
        pl.col("ref_range_upper").fill_nan(None),
    )
    return frame.select(LABEVENTS_COLUMNS)


def _spread_ids(ids: NDArray[np.int64], rng: np.random.Generator) -> NDArray[np.int64]:
    """Specimen ids look like MIMIC's (8 digits, not consecutive)."""
    return ids * 7 + rng.integers(0, 7, ids.size)


def _item_arrays(itemid: NDArray[np.int64], female: BoolArray) -> tuple[FloatArray, FloatArray, NDArray[np.object_]]:
    ref_low = np.full(itemid.size, np.nan)
    ref_high = np.full(itemid.size, np.nan)
    unit = np.empty(itemid.size, dtype=object)
    for item in ALL_ITEMS.values():
        rows = itemid == item.itemid
        if not rows.any():
            continue
        unit[rows] = item.unit or None
        for sex_female in (False, True):
            sel = rows & (female == sex_female)
            low, high = item.reference_range(sex_female)
            ref_low[sel] = np.nan if low is None else low
            ref_high[sel] = np.nan if high is None else high
    return ref_low, ref_high, unit


def d_labitems_table() -> pl.DataFrame:
    items = [*LAB_ITEMS, *EXTRA_ITEMS]
    frame = pl.DataFrame({
        "itemid": [i.itemid for i in items], "label": [i.label for i in items],
        "fluid": [i.fluid for i in items], "category": [i.category for i in items],
    })
    return frame.sort("itemid").select(D_LABITEMS_COLUMNS)
