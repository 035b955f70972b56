"""Latent state → `EcgParameters`: what each visit's ECG should show, by textbook electrophysiology.

Inputs are the true values at the moment of the ECG (potassium, ionised calcium, magnesium from
`lab_truth`, heart rate from `vitals`) plus the visit's conditions. Effect sizes (see also
docs/synthetic-cohort.md):

* potassium: T amplitude × exp(0.30 per mEq/L above 4.2) (peaked, narrow T in hyperkalaemia; flat,
  broad T with U waves and ST depression in hypokalaemia); PR +25 ms per mEq/L above 5.0; QRS
  +20 ms per mEq/L above 5.8; P flattening above 5.5; QT(U) +30 ms per mEq/L below 3.6.
* ionised calcium: QTc −90 ms per mmol/L above 1.22 (hypercalcaemia shortens ST), +150 ms per mmol/L
  below it (hypocalcaemia lengthens ST); magnesium: QTc +35 ms per mg/dL below 1.7.
* rate: the true rate at the moment of the ECG (vitals model: sepsis, fever, anaemia, bleeding, AF)
  with a moment-to-moment fluctuation; paced rhythm at the pacemaker's lower rate, flutter at a
  k:1 fraction of its 260–320/min wave rate, complete AV block at the escape rate.
* structure: continuous LV mass index → QRS voltage (× e^(0.007 per g/m² above 95)), QRS +0.12 ms
  per g/m², left axis shift, strain above 135 g/m²; low EF → QRS, QTc, P (left atrium), low limb
  voltage, late transition; LBBB/RBBB QRS 148/134 ms, incomplete RBBB 100–116 ms, fascicular
  blocks by axis (LAFB −48 to −75°, LPFB +108 to +130°), first-degree AV block PR 215–315 ms,
  Mobitz I/II and complete AV block, paced rhythm, acute ischaemia (territorial ST elevation or
  depression, T inversion), Q waves after an old infarct, COPD right axis / low voltage / P
  pulmonale, nonspecific ST-T changes (flat T, −0.04 mV ST).
* systemic couplings (issue 14, docs/synthetic-cohort.md coupling table): anaemia raises QRS
  voltage (+3 %/g/dL below 13.5, Brody effect) and flattens T; hypoalbuminaemia, congestion and
  cirrhosis lower voltage; glucose, diabetes, cirrhosis, hypoalbuminaemia and ESRD prolong QTc;
  diabetes, sepsis, heart failure and cirrhosis lower HRV.
* age and sex: PR, QTc and axis change with age, amplitudes and T fall; men have longer QRS and PR,
  shorter QTc, larger QRS and T voltage and J-point elevation over V1–V3.
* person: a fingerprint of axis, amplitudes, heart rotation, P axis and interval offsets that
  persists across the patient's ECGs (`fingerprint`).

The function is pure given its noise draws (`EcgNoise`), so the ground-truth graph can switch one
condition on or off and measure its effect on every parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ecgkt.synth.ecg_params import BundleBranchBlock, EcgParameters, IschaemiaTerritory, NoiseParameters
from ecgkt.synth.fingerprint import TRAITS, record_traits

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

_NORMALS = ("hr_moment", "jpt", "pace_qrs", "ectopic", "st", "wander", "mains", "muscle")
_UNIFORMS = ("avb", "strain", "fwave", "st_size", "q", "t_inv", "ectopy", "low_voltage", "qt_drug",
             "mains_on", "artifact", "nan", "flat", "paced", "pace_rate", "flutter_ratio", "flutter_rate",
             "escape", "escape_rate", "mobitz", "mobitz_ratio", "fascicle", "irbbb")


@dataclass
class EcgNoise:
    """Per-record random draws; fixed once so interventions compare like with like.

    `traits` are the record's fresh draws of the fingerprint traits (`fingerprint.TRAITS`); the
    mapping mixes them with the patient's own so that repeat ECGs of one person stay alike.
    """

    normal: FloatArray
    uniform: FloatArray
    traits: FloatArray

    @classmethod
    def draw(cls, n: int, rng: np.random.Generator) -> EcgNoise:
        return cls(rng.standard_normal((n, len(_NORMALS))), rng.random((n, len(_UNIFORMS))),
                   rng.standard_normal((n, len(TRAITS))))

    def z(self, name: str) -> FloatArray:
        return self.normal[:, _NORMALS.index(name)]

    def u(self, name: str) -> FloatArray:
        return self.uniform[:, _UNIFORMS.index(name)]

    def subset(self, rows: NDArray[np.int64]) -> EcgNoise:
        return EcgNoise(self.normal[rows], self.uniform[rows], self.traits[rows])


@dataclass
class EcgInputs:
    """Everything the mapping reads, one row per ECG record.

    Labs are the true values at the moment of the ECG; `patient_traits` (n, len(TRAITS)) is the
    record's patient's fingerprint; `lv_mass_index` (g/m²) and `ejection_fraction` (%) the patient's
    left ventricle (`fingerprint`).
    """

    flags: Mapping[str, BoolArray]
    potassium: FloatArray
    free_calcium: FloatArray
    magnesium: FloatArray
    heart_rate: FloatArray
    age: FloatArray
    female: BoolArray
    bmi: FloatArray
    ischaemia_territory: NDArray[np.object_]
    old_mi_territory: NDArray[np.object_]
    haemoglobin: FloatArray
    albumin: FloatArray
    glucose: FloatArray
    lv_mass_index: FloatArray
    ejection_fraction: FloatArray
    patient_traits: FloatArray


NAN_STRETCH_RATE = 0.009
FLAT_LEAD_RATE = 0.006  # together ≈ 1.5 % of records with a gap or a dead lead, as in MIMIC-IV-ECG
ELECTRODE_ARTIFACT_RATE = 0.04
PACED_SHARE = 0.75  # share of a pacemaker patient's ECGs that show paced beats (else intrinsic rhythm)

RHYTHM_CODES: dict[str, int] = {"sinus": 0, "atrial_fibrillation": 1, "atrial_flutter": 2, "paced": 3}
AV_BLOCK_CODES: dict[str, int] = {"none": 0, "mobitz1": 1, "mobitz2": 2, "complete": 3}
_RHYTHM_NAMES = {v: k for k, v in RHYTHM_CODES.items()}
_AV_BLOCK_NAMES = {v: k for k, v in AV_BLOCK_CODES.items()}


def _pos(x: FloatArray) -> FloatArray:
    return np.maximum(x, 0.0)


def ecg_parameter_arrays(x: EcgInputs, noise: EcgNoise) -> dict[str, NDArray[np.generic]]:
    """Vectorised mapping: one array per `EcgParameters` field (plus noise fields).

    Effect sizes follow the coupling table of docs/synthetic-cohort.md (issue 14); each line names
    its mechanism.
    """
    f = x.flags
    k, ca_i, mg = x.potassium, x.free_calcium, x.magnesium
    hb, alb, glu = x.haemoglobin, x.albumin, x.glucose
    male = ~x.female
    age = x.age
    traits = record_traits(x.patient_traits, noise.traits)

    def tz(name: str) -> FloatArray:
        return traits[:, TRAITS.index(name)]

    low_ef = _pos(50.0 - x.ejection_fraction)  # 0 with a preserved EF, up to ~32 points in HFrEF
    # A person's repolarisation sensitivity to potassium (log-normal, median 1): potassium's effects
    # on T, PR, QRS, P and U are scaled by it, so serum K does not map one-to-one onto the ECG.
    k_sens = np.exp(0.45 * tz("k_sens"))
    k_dev = 4.2 + k_sens * (k - 4.2)  # the potassium the ECG "shows"
    lv_excess = _pos(x.lv_mass_index - 95.0)  # g/m² above a normal mass
    paced = f["pacemaker"] & (noise.u("paced") < PACED_SHARE)
    af = f["atrial_fibrillation"] & ~paced
    flutter = f["atrial_flutter"] & ~paced & ~af
    complete = f["av_block_complete"] & ~paced
    second = f["av_block_second_degree"] & ~paced & ~complete
    mobitz1 = second & (noise.u("mobitz") < 0.7)

    # ---- rate: the rate at the moment of the ECG (the triage vital is another, later measurement)
    hr = np.clip(x.heart_rate * np.exp(0.04 * noise.z("hr_moment")), 35.0, 185.0)
    lower_rate = np.where(noise.u("pace_rate") < 0.5, 60.0, 70.0)
    hr = np.where(paced, np.maximum(hr, lower_rate), hr)
    flutter_rate = 260.0 + 60.0 * noise.u("flutter_rate")
    variable = noise.u("flutter_ratio") < 0.25
    ratio = np.where(variable, 0, np.clip(np.round(flutter_rate / hr), 2, 4)).astype(np.int64)
    hr = np.where(flutter, flutter_rate / np.where(variable, 3.0, np.maximum(ratio, 1)), hr)
    junctional = noise.u("escape") < 0.5
    escape = np.where(junctional, 38.0 + 14.0 * noise.u("escape_rate"), 26.0 + 14.0 * noise.u("escape_rate"))
    atrial_rate = np.where(complete, np.clip(x.heart_rate, 60.0, 130.0), np.where(flutter, flutter_rate, 0.0))
    hr = np.where(complete, escape, hr)
    mobitz_ratio = np.where(noise.u("mobitz_ratio") < 0.6, 3, 4)
    conduction_ratio = np.where(flutter, ratio, np.where(second, mobitz_ratio, 2)).astype(np.int64)

    # ---- heart rate variability: age, autonomic neuropathy (diabetes), sepsis, heart failure, cirrhosis
    hrv = (48.0 - 0.4 * (age - 40.0)) * (70.0 / hr) * np.exp(0.25 * tz("hrv"))
    hrv *= (np.where(f["sepsis"], 0.65, 1.0) * np.where(f["diabetes"], 0.8, 1.0)
            * np.where(f["heart_failure"], 0.85, 1.0) * np.where(f["liver_disease"], 0.8, 1.0))
    hrv = np.where(paced, 2.0, np.clip(hrv, 5.0, 80.0))

    ectopy_risk = (f["heart_failure"].astype(float) + (k < 3.3) + (mg < 1.6) + f["acute_ischaemia"]
                   + 0.5 * f["copd"] + 0.5 * (age > 70) + low_ef / 20.0)
    has_ectopy = (noise.u("ectopy") < 0.2 + 0.12 * ectopy_risk) & ~paced & ~complete & ~second & ~flutter
    ectopic = np.where(has_ectopy, np.clip((0.03 + 0.03 * ectopy_risk) * np.exp(0.5 * noise.z("ectopic")),
                                           0.0, 0.2), 0.0)

    # ---- PR: age, potassium, beta blockade, sex (men ~4 ms longer)
    pr = (148.0 + 0.5 * (age - 50.0) + 12.0 * tz("pr") + 25.0 * _pos(k_dev - 5.0) + 8.0 * f["beta_blocker"]
          + 4.0 * male)
    pr = np.where(f["first_degree_av_block"], 215.0 + 100.0 * noise.u("avb") + 25.0 * _pos(k_dev - 5.0), pr)
    pr = np.where(paced, 150.0, np.clip(pr, 100.0, 380.0))

    # ---- QRS: sex (men ~9 ms longer), LV mass, low EF, fascicular and bundle-branch blocks, pacing
    lbbb = f["lbbb"] & ~paced
    rbbb = f["rbbb"] & ~paced
    irbbb = f["incomplete_rbbb"] & ~paced & ~lbbb & ~rbbb
    fascicular = (f["lafb"] | f["lpfb"]) & ~paced & ~lbbb
    hyperk_qrs = 20.0 * _pos(k_dev - 5.8)
    qrs = (np.where(male, 95.0, 86.0) + 6.0 * tz("qrs") + 0.08 * (age - 50.0) + 0.12 * lv_excess
           + 0.25 * low_ef)
    qrs = np.where(fascicular, np.minimum(qrs + 10.0, 116.0), qrs)
    qrs = np.where(irbbb, 100.0 + 16.0 * noise.u("irbbb"), qrs)
    qrs = np.where(lbbb, 148.0 + 10.0 * tz("qrs"), qrs)
    qrs = np.where(rbbb, 134.0 + 7.0 * tz("qrs"), qrs)
    ventricular_escape = complete & ~junctional
    qrs = np.where(ventricular_escape, 145.0 + 10.0 * tz("qrs"), qrs)
    qrs = np.where(paced, 155.0 + 12.0 * noise.z("pace_qrs"), qrs)
    qrs = np.clip(qrs + hyperk_qrs, 65.0, 230.0)

    # ---- QTc: sex (women ~15 ms longer), age, electrolytes, ischaemia, low EF, glucose, diabetes,
    # cirrhosis (cirrhotic cardiomyopathy), hypoalbuminaemia, ESRD, drugs
    wide = lbbb | rbbb | paced | ventricular_escape
    qtc = np.where(male, 410.0, 425.0) + 13.0 * tz("qtc") + 0.25 * (age - 50.0)
    qtc += -150.0 * np.minimum(ca_i - 1.22, 0.0) - 90.0 * _pos(ca_i - 1.22)
    qtc += 30.0 * _pos(3.6 - k_dev) + 35.0 * _pos(1.7 - mg) - 10.0 * _pos(k_dev - 5.5)
    qtc += 12.0 * f["acute_ischaemia"] + 2.0 * f["heart_failure"] + 0.4 * low_ef + 0.05 * lv_excess + 15.0 * wide
    qtc += np.minimum(0.08 * _pos(glu - 140.0), 30.0) + 4.0 * f["diabetes"] + 18.0 * f["liver_disease"]
    qtc += 10.0 * _pos(3.5 - alb) + 10.0 * f["ckd_esrd"]
    qtc += 25.0 * (noise.u("qt_drug") < 0.05)  # QT-prolonging drugs
    qtc = np.clip(qtc, 320.0, 620.0)

    # ---- P: pulmonale in COPD, left-atrial enlargement with low EF / heart failure, flattening in hyperkalaemia
    p_amp = (np.exp(0.12 * tz("p_amp")) * np.where(f["copd"], 1.35, 1.0) * (1.0 + 0.006 * low_ef)
             * np.maximum(1.0 - 0.3 * _pos(k_dev - 5.5), 0.15))

    # ---- T: potassium, sex (flatter in women), age, anaemia, hypoalbuminaemia, low EF, nonspecific ST-T
    nsstt = f["nonspecific_st_t"]
    t_amp = (np.exp(0.15 * tz("t_amp")) * np.exp(0.30 * (k_dev - 4.2))
             * (1.0 - 0.3 * np.minimum(_pos(3.4 - k_dev), 2.0))
             * np.where(x.female, 0.8, 1.0) * (1.0 - 0.004 * (age - 50.0))
             * (1.0 - 0.05 * np.minimum(_pos(11.0 - hb), 5.0)) * (1.0 - 0.08 * np.minimum(_pos(3.5 - alb), 2.0))
             * (1.0 - 0.005 * low_ef) * np.where(nsstt, 0.35, 1.0))
    t_amp = np.clip(t_amp, 0.1, 3.5)
    t_width = np.clip((1.0 - 0.12 * _pos(k_dev - 5.0) + 0.12 * _pos(3.5 - k_dev)) * np.exp(0.06 * tz("t_width")),
                      0.6, 1.3)
    u_amp = (0.01 + 0.12 * _pos(3.6 - k_dev) + 0.03 * _pos(1.7 - mg)) * np.exp(0.3 * tz("t_width"))
    st_dev = (-0.08 * _pos(3.5 - k_dev) + 0.01 * noise.z("st") - 0.012 * np.minimum(_pos(9.0 - hb), 4.0)
              - 0.04 * nsstt)

    # ---- J point over V1-V3: the male pattern (largest in young men; Surawicz & Parikh 2002)
    j_point = np.where(male, 0.10 - 0.0015 * (age - 40.0) + 0.035 * noise.z("jpt"),
                       0.035 + 0.015 * noise.z("jpt"))
    j_point = np.where(wide, 0.0, np.clip(j_point, 0.0, 0.25))

    acute = f["acute_ischaemia"]
    stemi = f["stemi"]
    territory = np.where(acute, x.ischaemia_territory, x.old_mi_territory).astype(object)
    isch_st = np.where(stemi, 0.1 + 0.25 * noise.u("st_size"),
                       np.where(acute, -(0.05 + 0.15 * noise.u("st_size")), 0.0))
    old_mi_only = ~acute & (x.old_mi_territory != "none")
    q_waves = (stemi & (noise.u("q") < 0.35)) | old_mi_only
    t_inv = np.where(stemi, noise.u("t_inv") < 0.2,
                     np.where(acute, noise.u("t_inv") < 0.55, old_mi_only & (noise.u("t_inv") < 0.3)))

    # ---- LV mass -> voltage (continuous, not a switch), strain when the mass is large
    # (voltage per gram varies between people — chest wall, lung, heart position — so QRS voltage is a
    # noisy reading of LV mass, as the modest sensitivity of the voltage criteria for LVH shows)
    lvh_scale = np.clip(np.exp(0.007 * lv_excess + 0.12 * tz("lv_volt")), 0.75, 2.2)
    lvh_strain = (x.lv_mass_index > 135.0) & (noise.u("strain") < 0.45)

    bmi5 = np.clip((x.bmi - 28.0) / 5.0, -2.0, 3.0)
    axis = (50.0 - 0.5 * (age - 40.0) + 25.0 * tz("axis") - 0.12 * lv_excess - 25.0 * lbbb
            + 10.0 * rbbb + 25.0 * f["copd"] - 8.0 * bmi5)
    axis = np.where(f["lafb"] & fascicular, -48.0 - 27.0 * noise.u("fascicle"), axis)
    axis = np.where(f["lpfb"] & fascicular, 108.0 + 22.0 * noise.u("fascicle"), axis)
    axis = np.where(paced, -60.0 + 15.0 * noise.z("pace_qrs"), axis)
    axis = np.clip(axis, -89.0, 179.0)

    # ---- overall voltage: sex, habitus, COPD, age; anaemia raises it (lower blood resistivity,
    # Brody effect); oedema / effusion / ascites lower it (hypoalbuminaemia, congestion, cirrhosis);
    # low EF lowers limb voltage
    amp = (np.exp(0.12 * tz("amp")) * np.where(x.female, 0.85, 1.0) * np.sqrt(28.0 / np.clip(x.bmi, 16, 60))
           * np.where(f["copd"], 0.85, 1.0) * (1.0 - 0.003 * (age - 50.0))
           * np.clip(1.0 + 0.03 * (13.5 - hb), 0.92, 1.25)
           * (1.0 - 0.06 * np.minimum(_pos(4.0 - alb), 2.5))
           * np.where(f["acute_heart_failure"], 0.88, 1.0) * np.where(f["liver_disease"], 0.9, 1.0)
           * (1.0 - 0.004 * low_ef)
           * np.where(f["heart_failure"] & (noise.u("low_voltage") < 0.15), 0.7, 1.0))
    amp = np.clip(amp, 0.3, 2.0)
    fwave = np.where(af, 0.02 + 0.1 * noise.u("fwave"), 0.05)
    rotation = 8.0 * tz("rotation") - 0.3 * low_ef  # low EF / dilated LV: later precordial transition
    p_turn = 12.0 * tz("p_turn")

    rhythm = np.where(paced, RHYTHM_CODES["paced"], np.where(
        af, RHYTHM_CODES["atrial_fibrillation"], np.where(flutter, RHYTHM_CODES["atrial_flutter"], 0)))
    av_block = np.where(complete, AV_BLOCK_CODES["complete"], np.where(
        second, np.where(mobitz1, AV_BLOCK_CODES["mobitz1"], AV_BLOCK_CODES["mobitz2"]), 0))

    agitated = f["respiratory_failure"] | f["sepsis"] | f["alcohol_intoxication"]
    nan_stretch = noise.u("nan") < NAN_STRETCH_RATE
    return {
        "heart_rate_bpm": hr, "rhythm_af": af, "hrv_sd_ms": hrv, "ectopic_rate": ectopic, "pr_ms": pr,
        "qrs_ms": qrs, "qtc_ms": qtc, "p_amplitude_scale": p_amp, "t_amplitude_scale": t_amp,
        "t_width_scale": t_width, "u_amplitude_mv": u_amp, "st_deviation_mv": st_dev,
        "ischaemia_territory": territory, "ischaemia_st_mv": isch_st, "t_inversion": t_inv,
        "pathological_q": q_waves, "bbb_lbbb": lbbb | ventricular_escape, "bbb_rbbb": rbbb, "bbb_irbbb": irbbb,
        "lvh_voltage_scale": lvh_scale, "lvh_strain": lvh_strain, "qrs_axis_deg": axis, "amplitude_scale": amp,
        "fibrillatory_wave_mv": fwave, "rhythm_code": rhythm, "rhythm_flutter": flutter, "rhythm_paced": paced,
        "av_block_code": av_block, "av_block_second": second, "av_block_complete": complete,
        "atrial_rate_bpm": atrial_rate, "conduction_ratio": conduction_ratio, "precordial_j_mv": j_point,
        "anatomy_rotation_deg": rotation, "p_axis_turn_deg": p_turn,
        "baseline_wander_mv": 0.05 * np.exp(0.6 * noise.z("wander")),
        "mains_mv": np.where(noise.u("mains_on") < 0.4, 0.0, 0.01 * np.exp(0.7 * noise.z("mains"))),
        "muscle_mv": 0.01 * np.exp(0.5 * noise.z("muscle")) * np.where(agitated, 1.6, 1.0),
        "electrode_artifact": noise.u("artifact") < ELECTRODE_ARTIFACT_RATE,
        "nan_stretch": nan_stretch,
        "flat_lead": ~nan_stretch & (noise.u("flat") < FLAT_LEAD_RATE),
    }


# Numeric summaries of the parameter arrays used by the ground-truth graph.
ECG_FEATURES: tuple[str, ...] = (
    "heart_rate_bpm", "rhythm_af", "hrv_sd_ms", "ectopic_rate", "pr_ms", "qrs_ms", "qtc_ms",
    "p_amplitude_scale", "t_amplitude_scale", "t_width_scale", "u_amplitude_mv", "st_deviation_mv",
    "ischaemia_st_mv", "t_inversion", "pathological_q", "bbb_lbbb", "bbb_rbbb", "lvh_voltage_scale",
    "lvh_strain", "qrs_axis_deg", "amplitude_scale",
    "rhythm_flutter", "rhythm_paced", "av_block_second", "av_block_complete", "bbb_irbbb", "precordial_j_mv",
    "anatomy_rotation_deg", "p_axis_turn_deg",
)
BOOLEAN_FEATURES = frozenset({"rhythm_af", "t_inversion", "pathological_q", "bbb_lbbb", "bbb_rbbb", "lvh_strain",
                              "rhythm_flutter", "rhythm_paced", "av_block_second", "av_block_complete",
                              "bbb_irbbb"})


_TERRITORIES: dict[str, IschaemiaTerritory] = {"anterior": "anterior", "inferior": "inferior", "lateral": "lateral"}


def to_parameters(arrays: Mapping[str, NDArray[np.generic]]) -> list[EcgParameters]:
    """Turn the vectorised arrays into one frozen `EcgParameters` per record (the renderer's input)."""
    n = int(np.asarray(arrays["heart_rate_bpm"]).size)
    cols = {name: np.asarray(v).tolist() for name, v in arrays.items()}
    out: list[EcgParameters] = []
    for i in range(n):
        bbb: BundleBranchBlock = "lbbb" if cols["bbb_lbbb"][i] else ("rbbb" if cols["bbb_rbbb"][i] else (
            "incomplete_rbbb" if cols["bbb_irbbb"][i] else "none"))
        territory = _TERRITORIES.get(cols["ischaemia_territory"][i], "none")
        out.append(EcgParameters(
            heart_rate_bpm=round(cols["heart_rate_bpm"][i], 2),
            rhythm=_RHYTHM_NAMES[int(cols["rhythm_code"][i])],  # type: ignore[arg-type]
            hrv_sd_ms=round(cols["hrv_sd_ms"][i], 2),
            ectopic_rate=round(cols["ectopic_rate"][i], 4),
            pr_ms=round(cols["pr_ms"][i], 1),
            qrs_ms=round(cols["qrs_ms"][i], 1),
            qtc_ms=round(cols["qtc_ms"][i], 1),
            p_amplitude_scale=round(cols["p_amplitude_scale"][i], 3),
            t_amplitude_scale=round(cols["t_amplitude_scale"][i], 3),
            t_width_scale=round(cols["t_width_scale"][i], 3),
            u_amplitude_mv=round(cols["u_amplitude_mv"][i], 4),
            st_deviation_mv=round(cols["st_deviation_mv"][i], 4),
            ischaemia_territory=territory,
            ischaemia_st_mv=round(cols["ischaemia_st_mv"][i], 4),
            t_inversion=bool(cols["t_inversion"][i]),
            pathological_q=bool(cols["pathological_q"][i]),
            bundle_branch_block=bbb,
            lvh_voltage_scale=round(cols["lvh_voltage_scale"][i], 3),
            lvh_strain=bool(cols["lvh_strain"][i]),
            qrs_axis_deg=round(cols["qrs_axis_deg"][i], 1),
            amplitude_scale=round(cols["amplitude_scale"][i], 3),
            fibrillatory_wave_mv=round(cols["fibrillatory_wave_mv"][i], 4),
            av_block=_AV_BLOCK_NAMES[int(cols["av_block_code"][i])],  # type: ignore[arg-type]
            atrial_rate_bpm=round(cols["atrial_rate_bpm"][i], 1),
            conduction_ratio=int(cols["conduction_ratio"][i]),
            precordial_j_mv=round(cols["precordial_j_mv"][i], 4),
            anatomy_rotation_deg=round(cols["anatomy_rotation_deg"][i], 1),
            p_axis_turn_deg=round(cols["p_axis_turn_deg"][i], 1),
            noise=NoiseParameters(
                baseline_wander_mv=round(cols["baseline_wander_mv"][i], 4),
                mains_hz=60.0,
                mains_mv=round(cols["mains_mv"][i], 4),
                muscle_mv=round(cols["muscle_mv"][i], 4),
                electrode_artifact=bool(cols["electrode_artifact"][i]),
                nan_stretch=bool(cols["nan_stretch"][i]),
                flat_lead=bool(cols["flat_lead"][i]),
            ),
        ))
    return out
