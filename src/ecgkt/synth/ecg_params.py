"""The interface between the latent physiology and the waveform renderer.

`physiology` decides *what* the heart is doing (rate, rhythm, intervals, morphology changes) from
the latent clinical state; `waveform` decides *how* that looks on 12 leads. Neither knows the
other's internals: this module is their whole contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Rhythm = Literal["sinus", "atrial_fibrillation", "atrial_flutter", "paced"]
AvBlock = Literal["none", "mobitz1", "mobitz2", "complete"]
BundleBranchBlock = Literal["none", "lbbb", "rbbb", "incomplete_rbbb"]
IschaemiaTerritory = Literal["none", "anterior", "inferior", "lateral"]


@dataclass(frozen=True, slots=True)
class NoiseParameters:
    """Recording artefacts as seen in MIMIC-IV-ECG (ED carts, 60 Hz mains)."""

    baseline_wander_mv: float = 0.05
    mains_hz: float = 60.0
    mains_mv: float = 0.01
    muscle_mv: float = 0.01
    electrode_artifact: bool = False  # a short step/pop on one lead
    nan_stretch: bool = False  # a stretch of NaN samples on one or more leads (written as WFDB NaN)
    flat_lead: bool = False  # one lead disconnected (constant)


@dataclass(frozen=True, slots=True)
class EcgParameters:
    """What a 10 s ECG of one visit should show. Defaults are a healthy adult in sinus rhythm."""

    heart_rate_bpm: float = 72.0
    rhythm: Rhythm = "sinus"
    hrv_sd_ms: float = 30.0  # beat-to-beat RR standard deviation in sinus rhythm
    ectopic_rate: float = 0.0  # fraction of beats that are premature (PACs/PVCs)
    pvc_fraction: float = 0.5  # share of premature beats that are ventricular (always 1 in AF)
    pr_ms: float = 160.0  # > 200 ms = first-degree AV block
    qrs_ms: float = 90.0
    qtc_ms: float = 410.0  # the renderer derives each beat's QT from its RR
    p_amplitude_scale: float = 1.0
    t_amplitude_scale: float = 1.0  # > 1 peaked (hyperkalaemia), < 1 flat (hypokalaemia)
    t_width_scale: float = 1.0  # < 1 narrow, tented T
    u_amplitude_mv: float = 0.0  # prominent U waves in hypokalaemia
    st_deviation_mv: float = 0.0  # diffuse ST shift (negative = depression)
    ischaemia_territory: IschaemiaTerritory = "none"
    ischaemia_st_mv: float = 0.0  # ST elevation (>0) or depression (<0) in the territory's leads
    t_inversion: bool = False  # T inversion in the ischaemic territory
    pathological_q: bool = False  # Q waves in the ischaemic territory
    bundle_branch_block: BundleBranchBlock = "none"
    lvh_voltage_scale: float = 1.0  # QRS voltage multiplier for LVH (e.g. 1.5-2.0)
    lvh_strain: bool = False  # lateral ST depression and T inversion with LVH
    qrs_axis_deg: float = 45.0  # frontal plane axis
    amplitude_scale: float = 1.0  # body habitus / sex
    fibrillatory_wave_mv: float = 0.05  # f-wave amplitude in AF
    # Rhythms and conduction added for the ED case mix (issue 14). Defaults keep the old behaviour.
    av_block: AvBlock = "none"  # second-degree (Mobitz I / II) or complete AV block
    atrial_rate_bpm: float = 0.0  # flutter-wave rate, or the P-wave rate under AV block (0 = derived)
    conduction_ratio: int = 2  # flutter k:1 conduction (0 = variable 2-4:1); Mobitz n:(n-1)
    flutter_wave_mv: float = 0.15  # peak-to-peak sawtooth amplitude in lead II
    precordial_j_mv: float = 0.0  # J-point / ST elevation in V1-V3 ("male pattern", early repolarisation)
    anatomy_rotation_deg: float | None = None  # heart's rotation about its long axis (None: drawn per record)
    p_axis_turn_deg: float | None = None  # individual P-axis offset (None: drawn per record)
    noise: NoiseParameters = field(default_factory=NoiseParameters)


@dataclass(frozen=True, slots=True)
class MachineMeasurements:
    """What the cart's algorithm reports, in MIMIC `machine_measurements.csv` units (ms, degrees).

    `None` means "not measurable" and is written with MIMIC's sentinel value.
    """

    rr_interval: float | None
    p_onset: float | None
    p_end: float | None
    qrs_onset: float | None
    qrs_end: float | None
    t_end: float | None
    p_axis: float | None
    qrs_axis: float | None
    t_axis: float | None
    statements: tuple[str, ...]  # report_0 … report_17 lines, e.g. ("Sinus rhythm", "Normal ECG")
