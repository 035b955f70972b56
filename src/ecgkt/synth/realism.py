"""Published real-ECG figures the synthetic ECG is measured against.

`PUBLISHED` mirrors the coupling table of docs/synthetic-cohort.md (written before any experiment
on the issue-14 generator): for each benchmark target the published figure, its source and the
range an oracle on the noise-free ECG parameters should land in. `benchmarks/synth_realism.py`
prints its measurements beside these; nothing here is tuned on model results.

The realism benchmark also writes `benchmarks/results/ceilings.json` (macro AUROC over 22 common
ICD-10 prefixes on its own split): a property of the generator, not a ceiling for any Table 1. Table 1
and the transfer study measure theirs on their own test records and labels (`ecgkt.evaluate.ceiling`).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CEILINGS_FILE", "PUBLISHED", "Target"]

CEILINGS_FILE = "ceilings.json"


@dataclass(frozen=True)
class Target:
    figure: str
    source: str
    oracle_range: tuple[float, float]
    note: str = ""  # why the synthetic value may fall outside the range (shown only if it does)


_ATTIA_AGE_SEX = "Attia 2019 Circ Arrhythm Electrophysiol"
_KWON_ELECTROLYTES = "Kwon 2021 Ann Noninvasive Electrocardiol (PMC8164149)"

PUBLISHED: dict[str, Target] = {
    "sex": Target("AUC 0.97", _ATTIA_AGE_SEX, (0.90, 0.97),
                  "sex acts on a handful of parameters (QRS, PR, QTc, voltage, T, J point), each overlapping "
                  "between the sexes; a real ECG carries sex in finer morphology."),
    "age": Target("R² 0.7", _ATTIA_AGE_SEX, (0.5, 0.7),
                  "at the published value: the oracle reads the age-dependent parameters (PR, QTc, axis, "
                  "voltage, T, HRV) without any noise, which a model of the rendered signal cannot (the trained "
                  "encoder reaches far less)."),
    "lv_dysfunction_ef35": Target("AUC 0.93 (EF ≤ 35 %)", "Attia 2019 Nat Med", (0.88, 0.93),
                                  "the published AUC is for echo-confirmed EF ≤ 35 %; the generator's low-EF signs "
                                  "(QRS, QTc, voltage, P, transition) overlap with LVH, LBBB and age."),
    "heart_failure": Target("EF ≤ 35 %: 0.93; any HF not published as such", "Attia 2019 Nat Med", (0.78, 0.88),
                            "above the range: in the generator heart failure brings AF, LBBB, pacemakers, beta "
                            "blockade and LV mass with it, and the oracle reads all of them without noise; half of "
                            "it is HFpEF, so it stays near the published HFrEF figure rather than above it."),
    "anaemia_hb10": Target("AUC ≈ 0.92 int / 0.90 ext (not verified); 0.85 / 0.82 (Yang 2025)",
                           "Kwon 2020 Lancet Digit Health; Yang 2025 Intern Emerg Med", (0.80, 0.92),
                           "the ECG signs of anaemia in the generator (voltage, T flattening, rate) are diffuse and "
                           "share causes with other states; the published models also took age and sex as input."),
    "anaemia_who": Target("— (milder than Hb ≤ 10)", "—", (0.65, 0.85),
                          "WHO anaemia includes mild values the ECG barely reflects."),
    "hyperkalaemia_k55": Target("AUC 0.853–0.883 (K ≥ 5.5, CKD); 0.945 / 0.873", f"Galloway 2019 JAMA Cardiol; "
                                f"{_KWON_ELECTROLYTES}", (0.85, 0.95),
                                "potassium's signs pass through a personal sensitivity (log-SD 0.45); few positives "
                                "make the estimate noisy."),
    "hypokalaemia_k35": Target("AUC 0.866 / 0.857", _KWON_ELECTROLYTES, (0.85, 0.93),
                               "mild hypokalaemia (3.0–3.5) gives only small T/U changes in the generator."),
    "hypercalcaemia": Target("AUC 0.905 / 0.831", _KWON_ELECTROLYTES, (0.80, 0.90),
                             "few positives; the only sign is a shorter QTc, which overlaps the personal QTc spread."),
    "hypocalcaemia": Target("AUC 0.901 / 0.813", _KWON_ELECTROLYTES, (0.80, 0.90),
                            "the only sign is a longer QTc, shared with hypokalaemia, hypomagnesaemia, cirrhosis, "
                            "diabetes and drugs."),
    "hyponatraemia": Target("AUC 0.885 / 0.856", _KWON_ELECTROLYTES, (0.70, 0.86),
                            "the generator gives sodium no direct ECG sign (none is established); it is seen only "
                            "through its causes, so a value below the published range is expected."),
    "hypoalbuminaemia": Target("AUC 0.8771", "Lee 2022 Front Cardiovasc Med", (0.80, 0.88),
                               "albumin acts on voltage, T amplitude and QTc only modestly in the generator."),
    "ckd_any": Target("AUC 0.767 int / 0.709 ext", "Holmstrom 2023 Commun Med", (0.70, 0.80),
                      "slightly above: the generator's CKD is stage 3-5 only (real 'any stage' includes stages 1-2 "
                      "with normal labs), so its potassium, anaemia and LV-mass signs are stronger on average."),
    "ckd_stage4plus": Target("eGFR < 45: AUC 0.858 / 0.906; ESRD 0.783", "Kwon 2022 Int Urol Nephrol; Holmstrom 2023",
                             (0.80, 0.90),
                             "advanced CKD is seen through potassium, calcium, anaemia, LV mass and ESRD QTc; few "
                             "positives make the estimate noisy."),
    "diabetes": Target("AUC 0.8255", "Lin 2021 J Pers Med", (0.70, 0.83),
                       "diabetes acts on HRV and QTc only; HRV is estimated from 10 s of beats."),
    "liver_disease": Target("AUC 0.908 (transplant-listed cirrhosis)", "Ahn 2022 Am J Gastroenterol", (0.75, 0.90),
                            "the ED label includes milder liver disease than a transplant cohort."),
    "atrial_fibrillation": Target("≥ 0.95 (rhythm diagnosis; not verified here)", "textbook", (0.95, 1.0),
                                  "the visit label also covers paroxysmal AF absent from a given ECG."),
    "atrial_flutter": Target("≥ 0.95 (rhythm diagnosis; not verified here)", "textbook", (0.95, 1.0),
                             "a pacemaker overrides the flutter on paced ECGs."),
    "av_block_complete": Target("≥ 0.95 (conduction diagnosis; not verified here)", "textbook", (0.95, 1.0),
                                "very few positives (0.3 % of visits)."),
    "pacemaker": Target("≥ 0.95 when paced (not verified here)", "textbook", (0.85, 1.0),
                        "a quarter of a pacemaker patient's ECGs show the intrinsic rhythm, so the patient-level "
                        "label cannot be read from every ECG."),
    "stemi": Target("≥ 0.9 (not verified here)", "textbook", (0.90, 1.0),
                    "STEMI ECGs are drawn with 0.10–0.35 mV territorial elevation: unmistakable in the parameters."),
}
