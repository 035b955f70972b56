"""Latent state → `EcgParameters`: what each visit's ECG should show, by textbook electrophysiology.

Inputs are the true values at the moment of the ECG (potassium, ionised calcium, magnesium from
`lab_truth`, heart rate from `vitals`) plus the visit's conditions. Effect sizes (see also
docs/synthetic-cohort.md):

* potassium: T amplitude × exp(0.30 per mEq/L above 4.2) (peaked, narrow T in hyperkalaemia; flat,
  broad T with U waves and ST depression in hypokalaemia); PR +25 ms per mEq/L above 5.0; QRS
  +20 ms per mEq/L above 5.8; P flattening above 5.5; QT(U) +30 ms per mEq/L below 3.6.
* ionised calcium: QTc −90 ms per mmol/L above 1.22 (hypercalcaemia shortens ST), +150 ms per mmol/L
  below it (hypocalcaemia lengthens ST); magnesium: QTc +35 ms per mg/dL below 1.7.
* rate: from the vitals model (sepsis, fever, anaemia, hypovolaemia, AF with its ventricular rate).
* structure: LVH ×1.4–1.9 QRS voltage (strain in ~45 %), LBBB/RBBB QRS 148/134 ms, first-degree AV
  block PR 215–315 ms, acute ischaemia with territorial ST elevation (STEMI) or depression and T
  inversion (NSTEMI), Q waves after an old infarct, COPD right axis / low voltage / P pulmonale,
  heart failure with low voltage in a fifth.
* age and sex: slower rate and longer PR with age, left axis shift, smaller amplitudes in women and
  the obese, longer QTc in women.

The function is pure given its noise draws (`EcgNoise`), so the ground-truth graph can switch one
condition on or off and measure its effect on every parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ecgkt.synth.ecg_params import BundleBranchBlock, EcgParameters, IschaemiaTerritory, NoiseParameters

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

_NORMALS = ("hrv", "pr", "qrs", "qtc", "axis", "amp", "t_amp", "p_amp", "ectopic", "st", "wander", "mains",
            "muscle")
_UNIFORMS = ("avb", "lvh", "strain", "fwave", "st_size", "q", "t_inv", "ectopy", "low_voltage", "qt_drug",
             "mains_on", "artifact", "nan", "flat")


@dataclass
class EcgNoise:
    """Per-record random draws; fixed once so interventions compare like with like."""

    normal: FloatArray
    uniform: FloatArray

    @classmethod
    def draw(cls, n: int, rng: np.random.Generator) -> EcgNoise:
        return cls(rng.standard_normal((n, len(_NORMALS))), rng.random((n, len(_UNIFORMS))))

    def z(self, name: str) -> FloatArray:
        return self.normal[:, _NORMALS.index(name)]

    def u(self, name: str) -> FloatArray:
        return self.uniform[:, _UNIFORMS.index(name)]


@dataclass
class EcgInputs:
    """Everything the mapping reads, one row per ECG record."""

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


NAN_STRETCH_RATE = 0.009
FLAT_LEAD_RATE = 0.006  # together ≈ 1.5 % of records with a gap or a dead lead, as in MIMIC-IV-ECG
ELECTRODE_ARTIFACT_RATE = 0.04


def _pos(x: FloatArray) -> FloatArray:
    return np.maximum(x, 0.0)


def ecg_parameter_arrays(x: EcgInputs, noise: EcgNoise) -> dict[str, NDArray[np.generic]]:
    """Vectorised mapping: one array per `EcgParameters` field (plus noise fields)."""
    f = x.flags
    k, ca_i, mg = x.potassium, x.free_calcium, x.magnesium
    male = ~x.female
    af = f["atrial_fibrillation"]
    hr = np.clip(x.heart_rate, 35.0, 185.0)

    hrv = (48.0 - 0.4 * (x.age - 40.0)) * (70.0 / hr) * np.exp(0.25 * noise.z("hrv"))
    hrv *= np.where(f["sepsis"], 0.65, 1.0) * np.where(f["diabetes"], 0.8, 1.0) * np.where(
        f["heart_failure"], 0.75, 1.0)
    hrv = np.clip(hrv, 5.0, 80.0)

    ectopy_risk = (f["heart_failure"].astype(float) + (k < 3.3) + (mg < 1.6) + f["acute_ischaemia"]
                   + 0.5 * f["copd"] + 0.5 * (x.age > 70))
    has_ectopy = noise.u("ectopy") < 0.2 + 0.12 * ectopy_risk
    ectopic = np.where(has_ectopy, np.clip((0.03 + 0.03 * ectopy_risk) * np.exp(0.5 * noise.z("ectopic")),
                                           0.0, 0.2), 0.0)

    pr = 148.0 + 0.5 * (x.age - 50.0) + 12.0 * noise.z("pr") + 25.0 * _pos(k - 5.0) + 8.0 * f["beta_blocker"]
    pr = np.where(f["first_degree_av_block"], 215.0 + 100.0 * noise.u("avb") + 25.0 * _pos(k - 5.0), pr)
    pr = np.clip(pr, 100.0, 380.0)

    hyperk_qrs = 20.0 * _pos(k - 5.8)
    qrs = np.where(male, 93.0, 86.0) + 6.0 * noise.z("qrs") + 0.08 * (x.age - 50.0) + 8.0 * f["lvh"] + 5.0 * f[
        "heart_failure"]
    qrs = np.where(f["lbbb"], 148.0 + 10.0 * noise.z("qrs"), qrs)
    qrs = np.where(f["rbbb"], 134.0 + 7.0 * noise.z("qrs"), qrs)
    qrs = np.clip(qrs + hyperk_qrs, 65.0, 230.0)

    bbb = f["lbbb"] | f["rbbb"]
    qtc = np.where(male, 412.0, 424.0) + 13.0 * noise.z("qtc") + 0.25 * (x.age - 50.0)
    qtc += -150.0 * np.minimum(ca_i - 1.22, 0.0) - 90.0 * _pos(ca_i - 1.22)
    qtc += 30.0 * _pos(3.6 - k) + 35.0 * _pos(1.7 - mg) - 10.0 * _pos(k - 5.5)
    qtc += 12.0 * f["acute_ischaemia"] + 10.0 * f["heart_failure"] + 6.0 * f["lvh"] + 15.0 * bbb
    qtc += 25.0 * (noise.u("qt_drug") < 0.05)  # QT-prolonging drugs
    qtc = np.clip(qtc, 320.0, 620.0)

    p_amp = np.exp(0.12 * noise.z("p_amp")) * np.where(f["copd"], 1.35, 1.0) * np.maximum(
        1.0 - 0.3 * _pos(k - 5.5), 0.15)
    t_amp = np.exp(0.15 * noise.z("t_amp")) * np.exp(0.30 * (k - 4.2)) * (1.0 - 0.3 * np.minimum(
        _pos(3.4 - k), 2.0)) * np.where(x.female, 0.9, 1.0)
    t_amp = np.clip(t_amp, 0.15, 3.5)
    t_width = np.clip(1.0 - 0.12 * _pos(k - 5.0) + 0.12 * _pos(3.5 - k), 0.6, 1.3)
    u_amp = 0.01 + 0.12 * _pos(3.6 - k) + 0.03 * _pos(1.7 - mg)
    st_dev = -0.08 * _pos(3.5 - k) + 0.01 * noise.z("st")

    acute = f["acute_ischaemia"]
    stemi = f["stemi"]
    territory = np.where(acute, x.ischaemia_territory, x.old_mi_territory).astype(object)
    isch_st = np.where(stemi, 0.1 + 0.25 * noise.u("st_size"),
                       np.where(acute, -(0.05 + 0.15 * noise.u("st_size")), 0.0))
    old_mi_only = ~acute & (x.old_mi_territory != "none")
    q_waves = (stemi & (noise.u("q") < 0.35)) | old_mi_only
    t_inv = np.where(stemi, noise.u("t_inv") < 0.2,
                     np.where(acute, noise.u("t_inv") < 0.55, old_mi_only & (noise.u("t_inv") < 0.3)))

    lvh_scale = np.where(f["lvh"], 1.4 + 0.5 * noise.u("lvh"), 1.0)
    lvh_strain = f["lvh"] & (noise.u("strain") < 0.45)

    bmi5 = np.clip((x.bmi - 28.0) / 5.0, -2.0, 3.0)
    axis = (50.0 - 0.5 * (x.age - 40.0) + 25.0 * noise.z("axis") - 15.0 * f["lvh"] - 25.0 * f["lbbb"]
            + 10.0 * f["rbbb"] + 25.0 * f["copd"] - 8.0 * bmi5)
    axis = np.clip(axis, -89.0, 179.0)
    amp = (np.exp(0.12 * noise.z("amp")) * np.where(x.female, 0.9, 1.0) * np.sqrt(28.0 / np.clip(x.bmi, 16, 60))
           * np.where(f["copd"], 0.85, 1.0) * (1.0 - 0.003 * (x.age - 50.0))
           * np.where(f["heart_failure"] & (noise.u("low_voltage") < 0.2), 0.65, 1.0))
    amp = np.clip(amp, 0.35, 2.0)
    fwave = np.where(af, 0.02 + 0.1 * noise.u("fwave"), 0.05)

    agitated = f["respiratory_failure"] | f["sepsis"] | f["alcohol_intoxication"]
    nan_stretch = noise.u("nan") < NAN_STRETCH_RATE
    return {
        "heart_rate_bpm": hr, "rhythm_af": af, "hrv_sd_ms": hrv, "ectopic_rate": ectopic, "pr_ms": pr,
        "qrs_ms": qrs, "qtc_ms": qtc, "p_amplitude_scale": p_amp, "t_amplitude_scale": t_amp,
        "t_width_scale": t_width, "u_amplitude_mv": u_amp, "st_deviation_mv": st_dev,
        "ischaemia_territory": territory, "ischaemia_st_mv": isch_st, "t_inversion": t_inv,
        "pathological_q": q_waves, "bbb_lbbb": f["lbbb"], "bbb_rbbb": f["rbbb"], "lvh_voltage_scale": lvh_scale,
        "lvh_strain": lvh_strain, "qrs_axis_deg": axis, "amplitude_scale": amp, "fibrillatory_wave_mv": fwave,
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
)


_TERRITORIES: dict[str, IschaemiaTerritory] = {"anterior": "anterior", "inferior": "inferior", "lateral": "lateral"}


def to_parameters(arrays: Mapping[str, NDArray[np.generic]]) -> list[EcgParameters]:
    """Turn the vectorised arrays into one frozen `EcgParameters` per record (the renderer's input)."""
    n = int(np.asarray(arrays["heart_rate_bpm"]).size)
    cols = {name: np.asarray(v).tolist() for name, v in arrays.items()}
    out: list[EcgParameters] = []
    for i in range(n):
        bbb: BundleBranchBlock = "lbbb" if cols["bbb_lbbb"][i] else ("rbbb" if cols["bbb_rbbb"][i] else "none")
        territory = _TERRITORIES.get(cols["ischaemia_territory"][i], "none")
        out.append(EcgParameters(
            heart_rate_bpm=round(cols["heart_rate_bpm"][i], 2),
            rhythm="atrial_fibrillation" if cols["rhythm_af"][i] else "sinus",
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
