"""The latent clinical state: chronic conditions per patient, acute conditions per ED visit.

Each condition is a logistic model over demographics and the conditions sampled before it, written
as data (`PATIENT_CONDITIONS`, `VISIT_CONDITIONS`) so that the same table drives the sampler and the
ground-truth graph. Coefficients are log-odds; `age10` is (age − 60) / 10 years, `bmi5` is
(BMI − 28) / 5. Intercepts are set so that prevalences in an ED population with ECGs land near
published figures (see docs/synthetic-cohort.md); co-occurrence follows clinical causation:
diabetes and hypertension → CKD, CAD → heart failure → AF, smoking → COPD, alcohol → liver disease.

Lab-defined states (hyperkalaemia, hypocalcaemia, anaemia, …) are not sampled here: they are
thresholds on the true lab values that `lab_truth` computes from these conditions, so that a
hyperkalaemic visit is hyperkalaemic *because* of its CKD, AKI or drugs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

Level = Literal["patient", "visit"]
BoolArray = NDArray[np.bool_]
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class ConditionModel:
    """P(condition) = sigmoid(intercept + Σ coefficient × feature), only among carriers of `gate`."""

    name: str
    description: str
    intercept: float
    coefficients: Mapping[str, float] = field(default_factory=dict)
    gate: str | None = None
    kind: Literal["disease", "medication", "exposure", "hidden"] = "disease"


PATIENT_CONDITIONS: tuple[ConditionModel, ...] = (
    ConditionModel("smoker", "current or former smoker", -1.0, {"age10": -0.15, "male": 0.3}, kind="exposure"),
    ConditionModel("alcohol_use", "harmful alcohol use", -2.7, {"male": 0.9, "age10": -0.1}, kind="exposure"),
    ConditionModel("hypertension", "essential hypertension", -0.35,
                   {"age10": 0.6, "black": 0.35, "bmi5": 0.25}),
    ConditionModel("diabetes", "type 2 diabetes mellitus", -1.45,
                   {"age10": 0.3, "bmi5": 0.45, "black": 0.35, "hypertension": 0.3}),
    ConditionModel("coronary_disease", "chronic coronary artery disease", -2.7,
                   {"age10": 0.55, "male": 0.7, "diabetes": 0.6, "hypertension": 0.5, "smoker": 0.5}),
    ConditionModel("ckd", "chronic kidney disease stage 3-5", -2.9,
                   {"age10": 0.55, "diabetes": 0.8, "hypertension": 0.7, "black": 0.3,
                    "coronary_disease": 0.3}),
    ConditionModel("heart_failure", "chronic heart failure", -3.3,
                   {"age10": 0.55, "coronary_disease": 1.0, "hypertension": 0.6, "ckd": 0.6,
                    "diabetes": 0.35, "bmi5": 0.3}),
    ConditionModel("af_chronic", "known atrial fibrillation (paroxysmal or permanent)", -3.4,
                   {"age10": 0.8, "male": 0.35, "heart_failure": 1.3, "hypertension": 0.4, "bmi5": 0.2,
                    "alcohol_use": 0.3}, kind="hidden"),
    ConditionModel("af_permanent", "permanent (rather than paroxysmal) AF", 0.0,
                   {"age10": 0.3, "heart_failure": 0.5}, gate="af_chronic", kind="hidden"),
    ConditionModel("lvh", "left ventricular hypertrophy", -2.9,
                   {"hypertension": 2.0, "age10": 0.3, "ckd": 0.5, "male": 0.3, "black": 0.3}),
    ConditionModel("copd", "chronic obstructive pulmonary disease", -3.0, {"age10": 0.45, "smoker": 2.0}),
    ConditionModel("liver_disease", "chronic liver disease / cirrhosis", -3.9,
                   {"alcohol_use": 2.4, "bmi5": 0.3, "diabetes": 0.3, "age10": -0.1}),
    ConditionModel("malignancy", "active cancer", -3.2, {"age10": 0.5, "smoker": 0.4}, kind="hidden"),
    ConditionModel("first_degree_av_block", "first-degree AV block", -3.6,
                   {"age10": 0.5, "coronary_disease": 0.4, "male": 0.3}),
    ConditionModel("lbbb", "left bundle branch block", -4.8,
                   {"age10": 0.6, "heart_failure": 1.1, "lvh": 0.5, "coronary_disease": 0.4}),
    ConditionModel("rbbb", "right bundle branch block", -4.3,
                   {"age10": 0.55, "male": 0.5, "copd": 0.5, "coronary_disease": 0.3}),
    ConditionModel("prior_mi", "old myocardial infarction", -0.9, {}, gate="coronary_disease"),
    ConditionModel("loop_diuretic", "on a loop diuretic", -3.6,
                   {"heart_failure": 3.2, "ckd": 1.0, "hypertension": 0.6, "age10": 0.3, "liver_disease": 0.6},
                   kind="medication"),
    ConditionModel("raas_blocker", "on an ACE inhibitor / ARB / MRA", -2.6,
                   {"hypertension": 2.2, "heart_failure": 1.2, "diabetes": 0.6, "ckd": 0.5},
                   kind="medication"),
    ConditionModel("beta_blocker", "on a beta blocker", -3.0,
                   {"coronary_disease": 1.6, "heart_failure": 1.6, "af_chronic": 1.4, "hypertension": 0.8},
                   kind="medication"),
    ConditionModel("anticoagulant", "on warfarin", 0.2, {"age10": 0.2}, gate="af_chronic", kind="medication"),
)

VISIT_CONDITIONS: tuple[ConditionModel, ...] = (
    ConditionModel("distress", "pain or anxiety at arrival (raises heart rate and blood pressure)", -0.6, {},
                   kind="hidden"),
    ConditionModel("gastroenteritis", "vomiting / diarrhoea (volume and potassium loss)", -2.6,
                   {"age10": -0.1}),
    ConditionModel("infection", "bacterial infection (urinary, pulmonary, skin)", -2.1,
                   {"age10": 0.25, "diabetes": 0.4, "copd": 0.5, "ckd": 0.4, "liver_disease": 0.5,
                    "malignancy": 0.4}),
    ConditionModel("sepsis", "sepsis (infection with organ dysfunction)", -1.8,
                   {"age10": 0.35, "ckd": 0.5, "liver_disease": 0.6, "malignancy": 0.5, "diabetes": 0.3},
                   gate="infection"),
    ConditionModel("acute_ischaemia", "acute coronary syndrome (NSTEMI or STEMI)", -4.5,
                   {"age10": 0.35, "male": 0.5, "coronary_disease": 1.3, "diabetes": 0.4, "ckd": 0.3,
                    "smoker": 0.3}),
    ConditionModel("stemi", "ST-elevation myocardial infarction", -0.9, {}, gate="acute_ischaemia"),
    ConditionModel("acute_heart_failure", "acute decompensated heart failure", -0.5,
                   {"af_chronic": 0.5, "ckd": 0.4, "acute_ischaemia": 0.6, "infection": 0.4},
                   gate="heart_failure"),
    ConditionModel("respiratory_failure", "acute respiratory failure / COPD exacerbation", -5.0,
                   {"copd": 2.3, "sepsis": 1.6, "acute_heart_failure": 1.4, "infection": 0.8, "age10": 0.2}),
    ConditionModel("aki", "acute kidney injury", -3.8,
                   {"sepsis": 1.6, "ckd": 0.8, "acute_heart_failure": 0.9, "age10": 0.3, "infection": 0.4,
                    "gastroenteritis": 0.8}),
    ConditionModel("gi_bleed", "gastrointestinal bleeding", -3.9,
                   {"liver_disease": 1.4, "anticoagulant": 0.8, "age10": 0.3, "ckd": 0.4, "alcohol_use": 0.5}),
    ConditionModel("hyperglycaemic_crisis", "diabetic ketoacidosis / hyperosmolar state", -2.6,
                   {"infection": 0.8}, gate="diabetes"),
    ConditionModel("hypercalcaemic_process", "hyperparathyroidism or malignant hypercalcaemia", -6.3,
                   {"malignancy": 3.8, "age10": 0.3, "female": 0.4}, kind="hidden"),
    ConditionModel("alcohol_intoxication", "acute alcohol intoxication", -1.0, {}, gate="alcohol_use"),
    ConditionModel("new_onset_af", "AF triggered by an acute illness", -5.6,
                   {"age10": 0.6, "sepsis": 1.4, "acute_heart_failure": 0.8, "alcohol_intoxication": 1.0,
                    "acute_ischaemia": 0.5}, kind="hidden"),
)

CKD_STAGE_PROBABILITIES = {3: 0.60, 4: 0.25, 5: 0.15}
TERRITORIES = ("anterior", "inferior", "lateral")
TERRITORY_PROBABILITIES = (0.40, 0.40, 0.20)
PAROXYSMAL_AF_VISIT_PROBABILITY = 0.45


def sigmoid(x: FloatArray) -> FloatArray:
    return 1.0 / (1.0 + np.exp(-x))


def condition_probability(model: ConditionModel, features: Mapping[str, NDArray[np.generic]]) -> FloatArray:
    """P(model.name) for every row, given demographic features and already-sampled conditions."""
    n = next(iter(features.values())).shape[0]
    logit = np.full(n, model.intercept, dtype=np.float64)
    for name, coef in model.coefficients.items():
        logit += coef * features[name].astype(np.float64)
    p = sigmoid(logit)
    if model.gate is not None:
        p = np.where(features[model.gate], p, 0.0)
    return p


def sample_conditions(models: tuple[ConditionModel, ...], features: dict[str, NDArray[np.generic]],
                      rng: np.random.Generator) -> dict[str, BoolArray]:
    """Sample each condition in table order; later models see earlier draws through `features`."""
    drawn: dict[str, BoolArray] = {}
    for model in models:
        p = condition_probability(model, features)
        drawn[model.name] = rng.random(p.size) < p
        features[model.name] = drawn[model.name]
    return drawn


def demographic_features(age: FloatArray, female: BoolArray, black: BoolArray,
                         bmi: FloatArray) -> dict[str, NDArray[np.generic]]:
    return {
        "age10": (age - 60.0) / 10.0, "male": ~female, "female": female, "black": black,
        "bmi5": (bmi - 28.0) / 5.0,
    }


@dataclass
class ChronicState:
    """Per-patient chronic conditions, medications and exposures (index = patient index)."""

    flags: dict[str, BoolArray]
    ckd_stage: NDArray[np.int64]  # 0 when no CKD, else 3, 4 or 5
    old_mi_territory: NDArray[np.object_]  # "none" or the territory of the old infarct

    def burden(self) -> FloatArray:
        """Number of chronic diseases, which drives how often a patient comes back to the ED."""
        names = ("hypertension", "diabetes", "coronary_disease", "ckd", "heart_failure", "af_chronic",
                 "copd", "liver_disease", "malignancy")
        return np.sum([self.flags[n] for n in names], axis=0).astype(np.float64)


def sample_chronic(age: FloatArray, female: BoolArray, black: BoolArray, bmi: FloatArray,
                   rng: np.random.Generator) -> ChronicState:
    features = demographic_features(age, female, black, bmi)
    flags = sample_conditions(PATIENT_CONDITIONS, features, rng)
    both = flags["lbbb"] & flags["rbbb"]
    flags["rbbb"] = flags["rbbb"] & ~both  # one bundle cannot be blocked twice: keep the left
    stages = np.array(list(CKD_STAGE_PROBABILITIES))
    stage_p = np.array(list(CKD_STAGE_PROBABILITIES.values()))
    ckd_stage = np.where(flags["ckd"], rng.choice(stages, size=age.size, p=stage_p), 0).astype(np.int64)
    territory = np.array(TERRITORIES, dtype=object)[rng.choice(3, size=age.size, p=TERRITORY_PROBABILITIES)]
    old_mi = np.where(flags["prior_mi"], territory, "none").astype(object)
    return ChronicState(flags=flags, ckd_stage=ckd_stage, old_mi_territory=old_mi)


@dataclass
class VisitState:
    """Per-visit latent state (index = visit index): chronic flags copied from the patient plus acute ones."""

    flags: dict[str, BoolArray]
    ckd_stage: NDArray[np.int64]
    ischaemia_territory: NDArray[np.object_]  # "none" without acute ischaemia
    old_mi_territory: NDArray[np.object_]
    presenting_problem: NDArray[np.object_]

    @property
    def n(self) -> int:
        return int(self.ckd_stage.size)


def sample_visit_states(chronic: ChronicState, patient: NDArray[np.int64], age: FloatArray,
                        female: BoolArray, black: BoolArray, bmi: FloatArray,
                        rng: np.random.Generator) -> VisitState:
    """Acute conditions of each ED visit, conditioned on the patient's chronic state and age."""
    features = demographic_features(age, female, black, bmi)
    for name, values in chronic.flags.items():
        features[name] = values[patient]
    acute = sample_conditions(VISIT_CONDITIONS, features, rng)
    flags = {name: values[patient] for name, values in chronic.flags.items()}
    flags.update(acute)
    ckd_stage = chronic.ckd_stage[patient]
    flags["ckd_advanced"] = ckd_stage >= 4
    flags["ckd_esrd"] = ckd_stage >= 5
    flags["nstemi"] = flags["acute_ischaemia"] & ~flags["stemi"]
    paroxysm = rng.random(patient.size) < np.clip(
        PAROXYSMAL_AF_VISIT_PROBABILITY + 0.25 * flags["sepsis"] + 0.2 * flags["acute_heart_failure"], 0, 1)
    flags["atrial_fibrillation"] = (
        (flags["af_chronic"] & (flags["af_permanent"] | paroxysm)) | flags["new_onset_af"])
    flags["conduction_disease"] = flags["first_degree_av_block"] | flags["lbbb"] | flags["rbbb"]
    territory = np.array(TERRITORIES, dtype=object)[rng.choice(3, size=patient.size, p=TERRITORY_PROBABILITIES)]
    ischaemia_territory = np.where(flags["acute_ischaemia"], territory, "none").astype(object)
    return VisitState(
        flags=flags, ckd_stage=ckd_stage, ischaemia_territory=ischaemia_territory,
        old_mi_territory=chronic.old_mi_territory[patient],
        presenting_problem=presenting_problem(flags, rng),
    )


# The reason for the visit, in priority order: the first acute condition present wins; otherwise a
# common ED complaint unrelated to the latent physiology.
_ACUTE_PROBLEMS: tuple[tuple[str, str], ...] = (
    ("stemi", "chest_pain_cardiac"), ("sepsis", "sepsis"), ("respiratory_failure", "dyspnoea"),
    ("nstemi", "chest_pain_cardiac"), ("acute_heart_failure", "dyspnoea"), ("gi_bleed", "gi_bleed"),
    ("hyperglycaemic_crisis", "hyperglycaemia"), ("new_onset_af", "palpitations"), ("aki", "weakness"),
    ("infection", "infection"), ("gastroenteritis", "vomiting"), ("alcohol_intoxication", "intoxication"),
)
BACKGROUND_PROBLEMS: tuple[tuple[str, float], ...] = (
    ("chest_pain_other", 0.22), ("abdominal_pain", 0.12), ("fall", 0.11), ("syncope", 0.09),
    ("dizziness", 0.06), ("headache", 0.06), ("back_pain", 0.06), ("weakness", 0.07),
    ("palpitations", 0.05), ("laceration", 0.04), ("anxiety", 0.03), ("dyspnoea", 0.05),
    ("other", 0.04),
)


def presenting_problem(flags: Mapping[str, BoolArray], rng: np.random.Generator) -> NDArray[np.object_]:
    n = next(iter(flags.values())).size
    names = np.array([p for p, _ in BACKGROUND_PROBLEMS], dtype=object)
    probs = np.array([p for _, p in BACKGROUND_PROBLEMS])
    problem = names[rng.choice(names.size, size=n, p=probs / probs.sum())]
    for condition, label in reversed(_ACUTE_PROBLEMS):
        problem = np.where(flags[condition], label, problem)
    return problem.astype(object)


# ---- lab-defined states -------------------------------------------------------------------------
@dataclass(frozen=True)
class LabDefinedState:
    """A state defined by a threshold on a true lab value (e.g. hyperkalaemia: potassium > 5.1)."""

    name: str
    lab: str  # a lab_truth variable name
    direction: Literal["high", "low"]
    threshold: float
    threshold_female: float | None = None
    description: str = ""

    def evaluate(self, values: FloatArray, female: BoolArray) -> BoolArray:
        threshold = np.where(female, self.threshold_female, self.threshold) if (
            self.threshold_female is not None) else np.full(values.shape, self.threshold)
        return values > threshold if self.direction == "high" else values < threshold


LAB_DEFINED_STATES: tuple[LabDefinedState, ...] = (
    LabDefinedState("hyperkalaemia", "Potassium", "high", 5.1, description="serum potassium > 5.1 mEq/L"),
    LabDefinedState("hypokalaemia", "Potassium", "low", 3.3, description="serum potassium < 3.3 mEq/L"),
    LabDefinedState("hypercalcaemia", "Calcium Corrected", "high", 10.5,
                    description="albumin-corrected calcium > 10.5 mg/dL"),
    LabDefinedState("hypocalcaemia", "Calcium Corrected", "low", 8.4,
                    description="albumin-corrected calcium < 8.4 mg/dL"),
    LabDefinedState("hypomagnesaemia", "Magnesium", "low", 1.6, description="magnesium < 1.6 mg/dL"),
    LabDefinedState("anaemia", "Hemoglobin", "low", 13.0, 12.0,
                    description="haemoglobin < 13 g/dL (men) / 12 g/dL (women), WHO"),
    LabDefinedState("hyponatraemia", "Sodium", "low", 133.0, description="sodium < 133 mEq/L"),
)


def lab_defined_flags(values_at_arrival: Mapping[str, FloatArray], female: BoolArray) -> dict[str, BoolArray]:
    return {s.name: s.evaluate(values_at_arrival[s.lab], female) for s in LAB_DEFINED_STATES}


# Conditions reported in the ground truth and summaries, in a readable order.
REPORTED_STATES: tuple[str, ...] = (
    "ckd", "hyperkalaemia", "hypokalaemia", "hypercalcaemia", "hypocalcaemia", "hypomagnesaemia",
    "anaemia", "hyponatraemia", "infection", "sepsis", "acute_ischaemia", "stemi", "heart_failure",
    "acute_heart_failure", "atrial_fibrillation", "first_degree_av_block", "lbbb", "rbbb",
    "conduction_disease", "lvh", "hypertension", "diabetes", "hyperglycaemic_crisis", "liver_disease",
    "copd", "respiratory_failure", "aki", "gi_bleed", "coronary_disease", "prior_mi",
    "gastroenteritis", "alcohol_use", "smoker", "malignancy",
    "pacemaker", "lafb", "lpfb", "incomplete_rbbb", "atrial_flutter", "av_block_second_degree",
    "av_block_complete", "nonspecific_st_t",
)
