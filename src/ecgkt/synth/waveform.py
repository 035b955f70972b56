"""Synthetic 12-lead ECG from a cardiac dipole: `render_ecg(params, rng) -> (signal, measurements)`.

Why a dipole: the 12 leads are not independent signals but projections of one heart vector
H(t) = (x: patient's left, y: inferior, z: anterior) onto lead directions. Building the ECG that way
makes the lead relations (Einthoven, Goldberger), the R-wave progression, axis, reciprocal ST
changes and bundle-branch-block shapes come out of one model instead of twelve hand-tuned curves.

Each wave (P, septal q, R, S, ST, T, U, right-ventricular terminal forces, ...) is a *component*: a
3-D vector times a smooth pulse of compact support (cos^2 rise, optional plateau, cos^2 fall). Compact
support makes PR, QRS and QT exact by construction, so what the cart measures on the median beat
tracks what the physiology asked for. Components of every beat are rasterised together with one
vectorised gather/bincount (no Python loop over samples); per beat only onsets and the QT (from the
beat's own RR, Bazett) change.

Leads: I and II are projections of H; III, aVR, aVL, aVF are *derived* from them, and V1-V6 are
projections on horizontal-plane lead vectors whose lengths encode the chest electrodes' proximity
(Dower's classic inverse-transform coefficients, rounded). Noise is added per electrode
(`waveform_noise`) so the relations also hold on the noisy signal.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from ecgkt.synth.ecg_params import EcgParameters, MachineMeasurements
from ecgkt.synth.machine_reading import MedianBeat, read_machine_measurements
from ecgkt.synth.waveform_noise import apply_record_defects, electrode_noise, noise_on_independent_leads

FloatArray = NDArray[np.float64]
_Float = TypeVar("_Float", np.float32, np.float64)

# ---- leads ------------------------------------------------------------------------------------
_COS60, _SIN60 = 0.5, float(np.sqrt(3.0) / 2.0)
# Independent leads I, II, V1..V6 as rows; columns x (left), y (inferior), z (anterior).
INDEPENDENT_LEAD_VECTORS: FloatArray = np.array([
    [1.0, 0.0, 0.0],          # I at 0 deg
    [_COS60, _SIN60, 0.0],    # II at +60 deg
    [-0.52, 0.16, 0.92],      # V1: right of the sternum, anterior
    [0.04, 0.16, 1.39],       # V2
    [0.88, 0.10, 1.28],       # V3
    [1.21, 0.13, 0.60],       # V4
    [1.13, 0.13, 0.09],       # V5
    [0.83, 0.08, -0.23],      # V6: left mid-axillary, slightly posterior
])
_LEAD_VECTORS_F32 = INDEPENDENT_LEAD_VECTORS.astype(np.float32)
# Index of each MIMIC lead in the 12-lead output (I, II, III, aVR, aVF, aVL, V1..V6).
LEAD_INDEX: dict[str, int] = {
    name: i for i, name in enumerate(("I", "II", "III", "aVR", "aVF", "aVL",
                                       "V1", "V2", "V3", "V4", "V5", "V6"))
}


def expand_to_twelve_leads(independent: NDArray[_Float]) -> NDArray[_Float]:
    """(8, n) I, II, V1..V6 -> (12, n) in MIMIC order, deriving III, aVR, aVF, aVL exactly."""
    lead_i, lead_ii = independent[0], independent[1]
    out = np.empty((12, independent.shape[1]), dtype=independent.dtype)
    out[0] = lead_i
    out[1] = lead_ii
    out[2] = lead_ii - lead_i
    out[3] = -(lead_i + lead_ii) / 2.0
    out[4] = lead_ii - lead_i / 2.0
    out[5] = lead_i - lead_ii / 2.0
    out[6:] = independent[2:]
    return out


def project_to_leads(heart_vector: FloatArray) -> FloatArray:
    """Heart vector (3, n) in mV -> 12 leads (MIMIC order)."""
    return expand_to_twelve_leads(INDEPENDENT_LEAD_VECTORS @ heart_vector)


# ---- wave components --------------------------------------------------------------------------
P_WAVE, QRS, ST_SEGMENT, T_WAVE, U_WAVE = 0, 1, 2, 3, 4  # component groups
N_GROUPS = 5
# One component as written in the templates: start, rise, plateau, fall (s), vector (mV), group,
# shift-with-QT, stretch-with-QT.
Row = tuple[float, float, float, float, FloatArray, int, float, float]
_MIN_RAMP_S = 0.004


@dataclass(frozen=True, slots=True)
class Components:
    """K pulse components of one beat type; times in s relative to that beat's QRS onset.

    `shift` = 1 moves a component with the beat's QT change (T, U); `stretch` = 1 lengthens its
    plateau by it (the ST segment runs from the J point to the T wave wherever the T falls).
    """

    start: FloatArray
    rise: FloatArray
    flat: FloatArray
    fall: FloatArray
    vector: FloatArray  # (K, 3) mV
    group: NDArray[np.int64]
    shift: FloatArray
    stretch: FloatArray

    @staticmethod
    def build(rows: list[Row]) -> Components:
        cols = list(zip(*rows, strict=True))
        return Components(
            start=np.array(cols[0], dtype=np.float64),
            rise=np.maximum(np.array(cols[1], dtype=np.float64), _MIN_RAMP_S),
            flat=np.maximum(np.array(cols[2], dtype=np.float64), 0.0),
            fall=np.maximum(np.array(cols[3], dtype=np.float64), _MIN_RAMP_S),
            vector=np.array(cols[4], dtype=np.float64).reshape(-1, 3),
            group=np.array(cols[5], dtype=np.int64),
            shift=np.array(cols[6], dtype=np.float64),
            stretch=np.array(cols[7], dtype=np.float64),
        )

    def select(self, mask: NDArray[np.bool_]) -> Components:
        return Components(self.start[mask], self.rise[mask], self.flat[mask], self.fall[mask],
                          self.vector[mask], self.group[mask], self.shift[mask], self.stretch[mask])


def _pulse_samples(start: FloatArray, rise: FloatArray, flat: FloatArray, fall: FloatArray, *, fs: int,
                   n_samples: int) -> tuple[NDArray[np.intp], NDArray[np.int64], FloatArray]:
    """(owner component, sample index, pulse value) for every sample inside some pulse's support.

    Only the samples inside each support are generated (ragged ranges via repeat/cumsum), so the
    work is proportional to the total pulse length, whatever mix of short and long pulses.
    """
    total = rise + flat + fall
    first = np.maximum(np.ceil(start * fs).astype(np.int64), 0)
    last = np.minimum(np.floor((start + total) * fs).astype(np.int64), n_samples - 1)
    counts = np.maximum(last - first + 1, 0)
    owner = np.repeat(np.arange(start.size), counts)
    within = np.arange(owner.size) - np.repeat(np.cumsum(counts) - counts, counts)
    where = first[owner] + within
    since = where / fs - start[owner]
    # One cosine for the whole pulse: phase runs 0 -> 1 over the rise, stays at 1 on the plateau
    # and runs 1 -> 2 over the fall, and (1 - cos(pi phase)) / 2 is sin^2 up, 1, cos^2 down.
    rise_o = rise[owner]
    phase = np.where(since < rise_o, since / rise_o,
                     1.0 + np.maximum(since - rise_o - flat[owner], 0.0) / fall[owner])
    return owner, where, 0.5 - 0.5 * np.cos(np.pi * np.minimum(phase, 2.0))


def rasterise(start: FloatArray, rise: FloatArray, flat: FloatArray, fall: FloatArray,
              vector: FloatArray, *, fs: int, n_samples: int,
              bucket: NDArray[np.int64] | None = None, n_buckets: int = 1) -> FloatArray:
    """Sum of vector pulses on the sample grid t = i / fs, i in [0, n): returns (n_buckets, 3, n) mV.

    Each pulse only touches the samples inside its support, accumulated with bincount, so the cost
    is the total pulse length, not K x n. `bucket` (K,) sends each component to its own output slot
    (the median beat keeps P, QRS, ST, T and U apart for the reader).
    """
    size = n_buckets * n_samples
    out = np.zeros((3, size))
    if start.size:
        owner, where, shape = _pulse_samples(start, rise, flat, fall, fs=fs, n_samples=n_samples)
        if bucket is not None:
            where = where + bucket[owner] * n_samples
        weighted = shape[:, None] * vector[owner]
        for axis in range(3):
            out[axis] = np.bincount(where, weights=weighted[:, axis], minlength=size)
    return out.reshape(3, n_buckets, n_samples).transpose(1, 0, 2)


def _unit(v: FloatArray) -> FloatArray:
    return v / float(np.linalg.norm(v))


def _rotate_frontal(v: FloatArray, degrees: float | FloatArray) -> FloatArray:
    """Rotate (..., 3) vectors in the frontal (x, y) plane; positive = clockwise towards inferior.
    `degrees` may be one angle or one per row of `v`."""
    a = np.deg2rad(degrees)
    c, s = np.cos(a), np.sin(a)
    out = v.copy()
    out[..., 0] = c * v[..., 0] - s * v[..., 1]
    out[..., 1] = s * v[..., 0] + c * v[..., 1]
    return out


def _rotate_horizontal(v: FloatArray, degrees: float) -> FloatArray:
    """Rotate in the horizontal (x, z) plane: the heart's rotation about its long axis, which moves
    the precordial transition zone (positive = counter-clockwise, earlier transition)."""
    a = np.deg2rad(degrees)
    c, s = np.cos(a), np.sin(a)
    out = v.copy()
    out[..., 0] = c * v[..., 0] - s * v[..., 2]
    out[..., 2] = s * v[..., 0] + c * v[..., 2]
    return out


# Territory "injury vectors": ST shifts towards the injured wall; leads facing it rise, leads
# facing away show the reciprocal depression (anterior -> III/aVF, inferior -> I/aVL, lateral ->
# III/aVF and V1).
TERRITORY_DIRECTION: dict[str, FloatArray] = {
    "anterior": _unit(np.array([0.3, -0.35, 1.0])),
    "inferior": _unit(np.array([-0.3, 1.0, 0.0])),
    "lateral": _unit(np.array([1.0, -0.3, -0.2])),
}
TERRITORY_LEADS: dict[str, tuple[str, ...]] = {
    "anterior": ("V1", "V2", "V3", "V4"),
    "inferior": ("II", "III", "aVF"),
    "lateral": ("I", "aVL", "V5", "V6"),
}
_TWELVE_LEAD_VECTORS = expand_to_twelve_leads(INDEPENDENT_LEAD_VECTORS)  # (12, 3)


@functools.lru_cache(maxsize=32)
def _lead_rows(leads: tuple[str, ...]) -> FloatArray:
    return _TWELVE_LEAD_VECTORS[[LEAD_INDEX[name] for name in leads]]


def _scale_to_leads(direction: FloatArray, leads: tuple[str, ...], target_mv: float) -> FloatArray:
    """A vector along `direction` whose largest projection on `leads` equals `target_mv`."""
    return direction * (target_mv / float(np.max(_lead_rows(leads) @ direction)))


def _pulse_area(c: Components) -> FloatArray:
    """Time integral of each component's pulse (cos^2 ramps integrate to half their length)."""
    return c.rise / 2.0 + c.flat + c.fall / 2.0


def _frontal_angle_deg(c: Components) -> float:
    area = (c.vector * _pulse_area(c)[:, None]).sum(axis=0)
    return float(np.degrees(np.arctan2(area[1], area[0])))


@dataclass(frozen=True, slots=True)
class Morphology:
    """Per-record beat templates (conducted, premature atrial, premature ventricular)."""

    conducted: Components
    pac: Components
    pvc: Components
    qt_ref_s: float  # the QT the templates were built for; each beat shifts its T by its own QT
    p_only: Components | None = None  # a non-conducted P wave (AV block), placed at its QRS-relative slot
    ventricular: Components | None = None  # a QRS-T without its P (AV block: P waves are placed apart)


_V = np.array  # short alias for the vector literals below


def _qrs_rows(params: EcgParameters, q: float) -> tuple[list[Row], str]:
    """Depolarisation components for the record's conduction; returns rows and the conduction kind."""
    kind = "paced" if params.rhythm == "paced" else params.bundle_branch_block
    if kind in ("lbbb", "paced"):
        # (Right-ventricular apical pacing spreads like an LBBB: the same slow right-to-left
        # activation; the mapping gives it a left superior axis.)
        # Septum activates right-to-left (no septal q in I/V6, QS in V1), then the LV free wall
        # slowly and in two fronts (notched, broad R in I, aVL, V5, V6).
        return [
            (0.0, 0.15 * q, 0.0, 0.15 * q, _V([0.25, 0.05, -0.20]), QRS, 0.0, 0.0),
            (0.10 * q, 0.25 * q, 0.0, 0.25 * q, _V([0.85, 0.25, -0.85]), QRS, 0.0, 0.0),
            (0.40 * q, 0.25 * q, 0.0, 0.35 * q, _V([0.95, 0.10, -1.05]), QRS, 0.0, 0.0),
        ], kind
    # Normal septal (left-to-right, anterior) then LV free wall, then basal terminal forces.
    normal_q = 0.62 * q if kind == "rbbb" else (0.8 * q if kind == "incomplete_rbbb" else q)
    rows: list[Row] = [
        (0.0, 0.14 * normal_q, 0.0, 0.14 * normal_q, _V([-0.10, 0.05, 0.20]), QRS, 0.0, 0.0),
        (0.10 * normal_q, 0.20 * normal_q, 0.0, 0.20 * normal_q, _V([0.45, 0.45, 0.35]), QRS, 0.0, 0.0),
        (0.25 * normal_q, 0.25 * normal_q, 0.0, 0.25 * normal_q, _V([1.0, 0.8, -0.8]), QRS, 0.0, 0.0),
    ]
    if kind == "rbbb":
        # Late, slow right-ventricular activation: rightward and anterior (R' in V1, wide S in I/V6).
        rows.append((0.50 * q, 0.22 * q, 0.0, 0.28 * q, _V([-0.55, 0.05, 0.75]), QRS, 0.0, 0.0))
    elif kind == "incomplete_rbbb":
        # The same terminal right-ventricular forces, smaller and within a QRS < 120 ms (rSr' in V1).
        rows.append((0.60 * q, 0.20 * q, 0.0, 0.20 * q, _V([-0.45, 0.05, 0.70]), QRS, 0.0, 0.0))
    else:
        rows.append((0.60 * q, 0.20 * q, 0.0, 0.20 * q, _V([-0.35, -0.35, -0.40]), QRS, 0.0, 0.0))
    return rows, kind


# Repolarisation directions: the normal T (left, inferior, anterior: upright in I, II, V2-V6), the
# RBBB secondary T shift (away from the late rightward-anterior forces) and the U wave (largest V2-V3).
_NORMAL_T_VECTOR = np.array([0.30, 0.25, 0.25])
_NORMAL_T_DIRECTION = _unit(_NORMAL_T_VECTOR)
_RBBB_T_SHIFT = _unit(np.array([0.55, -0.05, -0.75]))
_U_DIRECTION = _unit(np.array([0.30, 0.20, 0.90]))
_ANTERIOR_ST_DIRECTION = _unit(np.array([0.05, 0.05, 1.0]))
_PACING_SPIKE = _unit(np.array([0.3, 0.9, -0.3]))
_ALL_LEADS = tuple(LEAD_INDEX)

# All normal QRS timings scale with the QRS duration, so the template's net-area axis is a constant.
_NORMAL_QRS_AXIS_DEG = _frontal_angle_deg(Components.build(_qrs_rows(EcgParameters(), 0.09)[0]))


def build_morphology(params: EcgParameters, rng: np.random.Generator, *, qt_ref_s: float) -> Morphology:
    """All beat templates of one record, with modest per-record anatomical variation."""
    blocked = params.bundle_branch_block in ("lbbb", "rbbb") or params.rhythm == "paced"
    q = max(params.qrs_ms / 1000.0, 0.125) if blocked else params.qrs_ms / 1000.0
    pr = params.pr_ms / 1000.0
    qt = max(qt_ref_s, q + 0.08)
    anatomy_rotation = float(rng.normal(0.0, 8.0))  # horizontal-plane heart rotation (drawn if not given)
    if params.anatomy_rotation_deg is not None:  # the patient's own (fingerprint), kept across visits
        anatomy_rotation = params.anatomy_rotation_deg

    qrs_rows, kind = _qrs_rows(params, q)
    qrs = Components.build(qrs_rows)
    vectors = qrs.vector * rng.normal(1.0, 0.08, size=(qrs.vector.shape[0], 1))
    vectors[1:] *= params.lvh_voltage_scale  # LVH: more LV mass, bigger LV free-wall forces
    vectors = _rotate_horizontal(vectors, anatomy_rotation)
    # Axis: the main LV forces turn to the requested axis while the septal forces keep their
    # anatomical direction and the terminal ones turn half as far. With a left axis that gives the
    # fascicular-block picture (qR in I/aVL, rS in II/III/aVF) instead of spurious inferior Q waves.
    # Two correction steps make the net-area axis the cart measures land on params.qrs_axis_deg.
    share = np.ones(len(vectors)) if kind in ("lbbb", "paced") else np.array([0.0, 1.0, 1.0, 0.5])
    area = _pulse_area(qrs)[:, None]
    axis_turn = params.qrs_axis_deg - _NORMAL_QRS_AXIS_DEG
    for _ in range(2):
        net = (_rotate_frontal(vectors, axis_turn * share) * area).sum(axis=0)
        miss = params.qrs_axis_deg - float(np.degrees(np.arctan2(net[1], net[0])))
        axis_turn += (miss + 180.0) % 360.0 - 180.0
    vectors = _rotate_frontal(vectors, axis_turn * share)
    rows = [(float(s), float(r), float(f), float(d), vec, QRS, 0.0, 0.0)
            for s, r, f, d, vec in zip(qrs.start, qrs.rise, qrs.flat, qrs.fall, vectors, strict=True)]

    territory = params.ischaemia_territory
    injury = TERRITORY_DIRECTION.get(territory)
    if injury is not None and params.pathological_q:
        # Necrotic wall: loss of its forces, so the net early vector points away from it (Q wave).
        for i, row in enumerate(rows):
            toward = float(row[4] @ injury)
            if toward > 0:
                rows[i] = (*row[:4], row[4] - 0.6 * toward * injury, *row[5:])
        rows.append((0.0, 0.024, 0.0, 0.032, -0.6 * injury * params.lvh_voltage_scale, QRS, 0.0, 0.0))

    # ---- repolarisation
    t_vec = _rotate_frontal(_rotate_horizontal(_NORMAL_T_VECTOR, anatomy_rotation), axis_turn / 2)
    t_vec = t_vec * rng.normal(1.0, 0.1)
    st_vec = np.zeros(3)
    if kind in ("lbbb", "paced"):
        # Secondary (discordant) ST-T: repolarisation opposite to the slow depolarisation.
        net_qrs = Components.build(rows)
        away = -_unit((net_qrs.vector * _pulse_area(net_qrs)[:, None]).sum(axis=0))
        t_vec, st_vec = 0.45 * away, 0.12 * away
    elif kind == "rbbb":
        t_vec = t_vec + 0.35 * _RBBB_T_SHIFT
    elif kind == "incomplete_rbbb":
        t_vec = t_vec + 0.12 * _RBBB_T_SHIFT
    t_vec = t_vec * params.t_amplitude_scale
    if injury is not None:
        if params.t_inversion:
            t_vec = t_vec - 2.0 * float(t_vec @ injury) * injury - 0.15 * injury
        if params.ischaemia_st_mv != 0.0:
            st_vec = st_vec + _scale_to_leads(injury, TERRITORY_LEADS[territory], params.ischaemia_st_mv)
    if params.lvh_strain:
        lateral = TERRITORY_DIRECTION["lateral"]
        t_vec = t_vec - 2.0 * max(float(t_vec @ lateral), 0.0) * lateral - 0.2 * lateral
        st_vec = st_vec + _scale_to_leads(lateral, ("V5", "V6"), -0.12)
    if params.precordial_j_mv != 0.0:
        # J-point / ST elevation over V1-V3 (the male pattern, early repolarisation): a small ST
        # vector pointing anteriorly, largest in V2-V3.
        st_vec = st_vec + _scale_to_leads(_ANTERIOR_ST_DIRECTION, ("V1", "V2", "V3"), params.precordial_j_mv)
    if params.st_deviation_mv != 0.0:
        # Diffuse ST shift along the normal repolarisation direction (aVR shows the mirror image).
        st_vec = st_vec + _scale_to_leads(_NORMAL_T_DIRECTION, _ALL_LEADS, params.st_deviation_mv)

    span = qt - q
    t_dur = min(max(0.55 * span * params.t_width_scale, 0.06), span - 0.02)
    rise_frac = 0.5 + 0.12 * min(max((params.t_width_scale - 0.6) / 0.4, 0.0), 1.0)
    t_start = qt - t_dur
    t_peak = t_start + rise_frac * t_dur
    rows.append((t_start, rise_frac * t_dur, 0.0, (1 - rise_frac) * t_dur, t_vec, T_WAVE, 1.0, 0.0))
    if np.any(st_vec != 0.0):
        st_begin = q - 0.012
        rows.append((st_begin, 0.024, t_peak - st_begin - 0.024, (1 - rise_frac) * t_dur, st_vec,
                     ST_SEGMENT, 0.0, 1.0))
    if params.u_amplitude_mv > 0:
        rows.append((qt - 0.02, 0.07, 0.0, 0.08, _scale_to_leads(_U_DIRECTION, ("V2", "V3"), params.u_amplitude_mv),
                     U_WAVE, 1.0, 0.0))

    # ---- atrial depolarisation: right atrium (inferior, anterior) then left atrium (left, posterior)
    p_dur = float(rng.normal(0.100, 0.006))
    pr = max(pr, p_dur + 0.015)  # the P wave ends before the QRS starts (no pre-excitation model)
    p_scale = params.p_amplitude_scale
    p_turn = float(rng.normal(0.0, 12.0))  # individual P axis (normal range ~0-75 deg)
    if params.p_axis_turn_deg is not None:
        p_turn = params.p_axis_turn_deg
    ra_vec, la_vec = _rotate_frontal(p_scale * _V([[0.05, 0.12, 0.08], [0.12, 0.08, -0.06]]), p_turn)
    la_start = -pr + 0.35 * p_dur
    p_rows: list[Row] = [
        (-pr, 0.30 * p_dur, 0.0, 0.30 * p_dur, ra_vec, P_WAVE, 0.0, 0.0),
        (la_start, 0.32 * p_dur, 0.0, 0.33 * p_dur, la_vec, P_WAVE, 0.0, 0.0),
    ]
    # A premature atrial beat from a low atrial focus: retrograde P (negative in II, III, aVF), and
    # slightly slower AV conduction of the early impulse.
    pac_pr = pr + 0.02
    pac_p = [(-pac_pr, 0.4 * p_dur, 0.0, 0.45 * p_dur, p_scale * _V([0.06, -0.12, 0.06]), P_WAVE, 0.0, 0.0)]

    if params.amplitude_scale != 1.0:
        p_rows = [(*r[:4], r[4] * params.amplitude_scale, *r[5:]) for r in p_rows]
        pac_p = [(*r[:4], r[4] * params.amplitude_scale, *r[5:]) for r in pac_p]
        rows = [(*r[:4], r[4] * params.amplitude_scale, *r[5:]) for r in rows]
    if kind == "paced":
        # The pacing stimulus: a spike just before the paced QRS (band-limited by the cart's filter,
        # so a few ms wide and a fraction of a millivolt, largest in the inferior and left leads).
        rows.append((-0.006, _MIN_RAMP_S, 0.0, _MIN_RAMP_S, 0.6 * params.amplitude_scale * _PACING_SPIKE, QRS,
                     0.0, 0.0))
    with_p = params.rhythm in ("sinus", "paced")
    conducted = Components.build((p_rows if with_p and params.av_block != "complete" else []) + rows)
    pac = Components.build(pac_p + rows)
    pvc = Components.build(_pvc_rows(rng, qt, params.amplitude_scale))
    p_only = ventricular = None
    if params.av_block != "none":
        p_only = Components.build(p_rows)
        ventricular = Components.build(rows)
    return Morphology(conducted=conducted, pac=pac, pvc=pvc, qt_ref_s=qt, p_only=p_only, ventricular=ventricular)


def _pvc_rows(rng: np.random.Generator, qt: float, scale: float) -> list[Row]:
    """A premature ventricular beat: no P, wide bizarre QRS from an ectopic focus, discordant T."""
    q = 0.15
    if rng.random() < 0.5:  # right-ventricular outflow tract: LBBB-like, inferior axis
        first, second = _V([0.3, 1.0, -0.6]), _V([0.7, 1.3, -1.3])
    else:  # left-ventricular focus: RBBB-like, superior axis
        first, second = _V([-0.45, -0.6, 0.7]), _V([-0.9, -1.2, 1.3])
    t_vec = -0.5 * _unit(first + second)
    qt_pvc = qt + 0.05
    t_dur = 0.55 * (qt_pvc - q)
    return [
        (0.0, 0.35 * q, 0.0, 0.30 * q, first * scale, QRS, 0.0, 0.0),
        (0.30 * q, 0.30 * q, 0.0, 0.40 * q, 1.2 * second * scale, QRS, 0.0, 0.0),
        (qt_pvc - t_dur, 0.6 * t_dur, 0.0, 0.4 * t_dur, t_vec * scale, T_WAVE, 1.0, 0.0),
    ]


# ---- rhythm -----------------------------------------------------------------------------------
NORMAL_BEAT, PAC_BEAT, PVC_BEAT, P_ONLY_BEAT, VENTRICULAR_BEAT = 0, 1, 2, 3, 4
_MIN_RR_S = 0.27  # ventricular refractoriness bounds the fastest conducted AF beats


@dataclass(frozen=True, slots=True)
class BeatSchedule:
    """QRS onset times (s, may start before 0), beat kind, and the RR preceding each beat (s)."""

    onset: FloatArray
    kind: NDArray[np.int64]
    rr_before: FloatArray


def beat_schedule(params: EcgParameters, rng: np.random.Generator, duration_s: float) -> BeatSchedule:
    """Underlying rhythm, then premature beats inserted with their physiological pauses.

    Sinus: RR = mean + respiratory sinus arrhythmia + random beat-to-beat variation (sd hrv_sd_ms).
    AF: irregularly irregular, log-normal RR with CV ~0.2-0.3 (no sinus periodicity at all).
    PVC: replaces a beat early; the sinus beat after it is blocked, so the next conducted beat keeps
    the sinus timing (full compensatory pause). PAC: resets the sinus node, later beats shift.
    """
    if params.av_block != "none":
        return _av_block_schedule(params, rng, duration_s)
    rr_mean = 60.0 / max(params.heart_rate_bpm, 20.0)
    lead_in = 2.5  # start before t=0 so the first visible beat has a real predecessor
    n_beats = int(np.ceil((duration_s + lead_in + 1.0) / max(_MIN_RR_S, 0.6 * rr_mean))) + 2
    if params.rhythm == "atrial_fibrillation":
        cv = float(rng.uniform(0.18, 0.30))
        sigma = np.sqrt(np.log1p(cv * cv))
        rr = rr_mean * rng.lognormal(-sigma * sigma / 2.0, sigma, n_beats)
    elif params.rhythm == "atrial_flutter":
        # Ventricular beats on multiples of the flutter cycle: fixed k:1 or variable 2-4:1.
        cycle = 60.0 / flutter_rate_bpm(params)
        ratio = (np.full(n_beats, params.conduction_ratio) if params.conduction_ratio > 0
                 else rng.choice(np.array([2, 3, 4]), size=n_beats, p=[0.5, 0.2, 0.3]))
        rr = ratio * cycle + rng.normal(0.0, 0.004, n_beats)
    elif params.rhythm == "paced":
        rr = rr_mean + rng.normal(0.0, 0.003, n_beats)  # the pacemaker's lower rate: no sinus variability
    else:
        hrv = params.hrv_sd_ms / 1000.0
        resp_hz = float(rng.uniform(0.2, 0.33))
        t_approx = np.arange(n_beats) * rr_mean
        rsa = 0.7 * np.sqrt(2.0) * hrv * np.sin(2 * np.pi * resp_hz * t_approx + rng.uniform(0, 2 * np.pi))
        rr = rr_mean + rsa + 0.71 * hrv * rng.standard_normal(n_beats)
    rr = np.maximum(rr, _MIN_RR_S)
    times = np.cumsum(rr) - lead_in - float(rng.uniform(0.0, rr_mean))
    kind = np.zeros(n_beats, dtype=np.int64)
    if params.ectopic_rate > 0:
        premature = rng.random(n_beats) < params.ectopic_rate
        premature[0] = False
        premature[1:] &= ~premature[:-1]  # no couplets: isolated premature beats only
        pvc_share = 1.0 if params.rhythm == "atrial_fibrillation" else params.pvc_fraction
        is_pvc = rng.random(n_beats) < pvc_share
        coupling = rng.uniform(0.55, 0.75, n_beats)
        idx = np.flatnonzero(premature)
        early_time = times[idx - 1] + coupling[idx] * rr[idx]
        pac_idx = idx[~is_pvc[idx]]
        # A PAC resets the sinus node: every later beat moves earlier by the prematurity, plus the
        # slightly longer cycle after the reset.
        shift = np.zeros(n_beats)
        shift[pac_idx] = (early_time[~is_pvc[idx]] - times[pac_idx]) + 0.05 * rr[pac_idx]
        shift_after = np.cumsum(shift) - shift
        times = times + shift_after
        times[idx] = times[idx - 1] + coupling[idx] * rr[idx]
        kind[idx] = np.where(is_pvc[idx], PVC_BEAT, PAC_BEAT)
        # The PVC takes the place of the beat whose timing it pre-empts; the next sinus beat then
        # arrives on schedule two sinus cycles after the last one (compensatory pause), which the
        # unshifted times already give.
    rr_before = np.diff(times, prepend=times[0] - rr[0])
    return BeatSchedule(onset=times, kind=kind, rr_before=rr_before)


def flutter_rate_bpm(params: EcgParameters) -> float:
    """Atrial flutter-wave rate: given, or the multiple of the ventricular rate nearest 300/min."""
    if params.atrial_rate_bpm > 0:
        return params.atrial_rate_bpm
    ratio = params.conduction_ratio if params.conduction_ratio > 0 else 3
    return float(np.clip(params.heart_rate_bpm * ratio, 240.0, 340.0))


def _av_block_schedule(params: EcgParameters, rng: np.random.Generator, duration_s: float) -> BeatSchedule:
    """P waves and QRS complexes placed apart, as second- or third-degree AV block dissociates them.

    Mobitz I (Wenckebach): in each group of n P waves the PR lengthens by shrinking steps and the
    n-th P is not conducted. Mobitz II: constant PR, every n-th P blocked. Complete block: atria at
    their own rate, ventricles at an independent escape rate (`heart_rate_bpm`).
    """
    lead_in = 2.5
    pr = params.pr_ms / 1000.0
    if params.av_block == "complete":
        atrial_rr = 60.0 / (params.atrial_rate_bpm if params.atrial_rate_bpm > 0 else 80.0)
        vent_rr = 60.0 / max(params.heart_rate_bpm, 15.0)
        n_a = int(np.ceil((duration_s + lead_in + 1.0) / atrial_rr)) + 2
        n_v = int(np.ceil((duration_s + lead_in + 1.0) / vent_rr)) + 2
        p_times = np.cumsum(atrial_rr + rng.normal(0.0, 0.01, n_a)) - lead_in - float(rng.uniform(0, atrial_rr))
        v_times = np.cumsum(vent_rr + rng.normal(0.0, 0.01, n_v)) - lead_in - float(rng.uniform(0, vent_rr))
        p_slot = p_times + pr  # a P-only beat is placed at its would-be QRS onset
    else:
        n_group = max(int(params.conduction_ratio), 2)
        atrial_rr = 60.0 / (params.atrial_rate_bpm if params.atrial_rate_bpm > 0
                            else params.heart_rate_bpm * n_group / (n_group - 1))
        n_a = int(np.ceil((duration_s + lead_in + 1.0) / atrial_rr)) + n_group + 2
        p_times = np.cumsum(atrial_rr + rng.normal(0.0, 0.008, n_a)) - lead_in - float(rng.uniform(0, atrial_rr))
        position = (np.arange(n_a) + int(rng.integers(0, n_group))) % n_group
        conducted = position < n_group - 1
        if params.av_block == "mobitz1":
            increments = 0.06 * (0.55 ** np.arange(n_group))  # 60, 33, 18 ms ... (decreasing increments)
            extra = np.concatenate([[0.0], np.cumsum(increments)])[position]
        else:
            extra = np.zeros(n_a)
        v_times = p_times[conducted] + pr + extra[conducted]
        p_slot = p_times + pr  # P-only beats sit at the slot of the *template* PR
    onset = np.concatenate([v_times, p_slot])
    kind = np.concatenate([np.full(v_times.size, VENTRICULAR_BEAT), np.full(p_slot.size, P_ONLY_BEAT)])
    order = np.argsort(onset, kind="stable")
    onset, kind = onset[order], kind[order]
    vent = kind == VENTRICULAR_BEAT
    rr_before = np.full(onset.size, 60.0 / max(params.heart_rate_bpm, 15.0))
    v_onsets = onset[vent]
    rr_before[vent] = np.diff(v_onsets, prepend=v_onsets[0] - rr_before[0])
    return BeatSchedule(onset=onset, kind=kind, rr_before=rr_before)


def qt_for_rr(qtc_ms: float, rr_s: FloatArray | float) -> FloatArray:
    """Bazett: QT = QTc * sqrt(RR), RR clipped to a physiological range."""
    return np.asarray(qtc_ms / 1000.0 * np.sqrt(np.clip(rr_s, 0.3, 2.0)), dtype=np.float64)


# ---- atrial fibrillation -------------------------------------------------------------------------
_F_WAVE_DIRECTIONS: FloatArray = np.array([
    _unit(np.array([-0.2, 0.8, 0.6])),
    _unit(np.array([0.1, 0.6, 0.8])),
    _unit(np.array([-0.3, 0.9, 0.3])),
])


def fibrillatory_waves(amplitude_mv: float, rng: np.random.Generator, *, fs: int,
                       n_samples: int) -> FloatArray:
    """Atrial fibrillatory activity (3, n): three wavelets with spectral peaks at 4.5-8.5 Hz.

    Each wavelet is narrow-band noise (a Gaussian spectral bump 0.25-0.6 Hz wide, random phases),
    i.e. an oscillation whose amplitude and frequency wander as real f-waves do; drawing it in the
    frequency domain costs one small inverse FFT. The wavelets point inferiorly and anteriorly, so
    they are largest in V1, II, III and aVF; the result is scaled so V1 has peak amplitude
    ~`amplitude_mv` (RMS = amplitude / sqrt(2)).
    """
    n_bins = min(n_samples // 2 + 1, int(12.0 * n_samples / fs) + 1)  # nothing above 12 Hz
    freqs = np.arange(n_bins) * fs / n_samples
    centres = rng.uniform(4.5, 8.5, 3)
    widths = rng.uniform(0.25, 0.6, 3)
    bump = np.exp(-0.5 * ((freqs[None, :] - centres[:, None]) / widths[:, None]) ** 2)
    draws = rng.standard_normal((3, 2 * n_bins)).view(np.complex128)
    spectrum = np.zeros((3, n_samples // 2 + 1), dtype=np.complex128)
    spectrum[:, :n_bins] = draws * bump * np.array([0.5, 0.3, 0.2])[:, None]
    heart = _F_WAVE_DIRECTIONS.T @ np.fft.irfft(spectrum, n=n_samples, axis=1)
    v1_rms = float(np.sqrt(np.mean((INDEPENDENT_LEAD_VECTORS[2] @ heart) ** 2)))
    return np.asarray(heart * (amplitude_mv / np.sqrt(2.0) / max(v1_rms, 1e-12)))


def flutter_waves(rate_bpm: float, amplitude_mv: float, rng: np.random.Generator, *, fs: int,
                  n_samples: int) -> FloatArray:
    """Typical (counter-clockwise) atrial flutter (3, n): a sawtooth at the flutter rate, slow descent
    and quick rise, pointing superiorly so it is negative in II, III and aVF and positive in V1;
    scaled to `amplitude_mv` peak to peak in lead II."""
    t = np.arange(n_samples) / fs
    phase = (t * rate_bpm / 60.0 + float(rng.uniform(0.0, 1.0))) % 1.0
    saw = np.where(phase < 0.75, 0.5 - phase / 0.75, -0.5 + (phase - 0.75) / 0.25)
    direction = _unit(np.array([0.05, 0.9, -0.45]))
    lead_ii = float(INDEPENDENT_LEAD_VECTORS[1] @ direction)
    return np.asarray(np.outer(direction, saw) * (amplitude_mv / max(abs(lead_ii), 1e-6)))


# ---- record -----------------------------------------------------------------------------------
def _place_beats(morph: Morphology, schedule: BeatSchedule, params: EcgParameters,
                 resp_phase: float, resp_hz: float) -> tuple[FloatArray, ...]:
    """All pulses of all beats in absolute time: (start, rise, flat, fall, vector)."""
    qt_beat = qt_for_rr(params.qtc_ms, schedule.rr_before)
    parts: list[tuple[FloatArray, ...]] = []
    templates = ((NORMAL_BEAT, morph.conducted), (PAC_BEAT, morph.pac), (PVC_BEAT, morph.pvc),
                 (P_ONLY_BEAT, morph.p_only), (VENTRICULAR_BEAT, morph.ventricular))
    for kind, template in templates:
        mask = schedule.kind == kind
        if template is None or not mask.any():
            continue
        onset = schedule.onset[mask]
        d_qt = (qt_beat[mask] - morph.qt_ref_s)[:, None]
        shape = (onset.size, template.start.size)
        # Breathing moves the heart relative to the electrodes: QRS amplitude varies by a few %.
        breath = 1.0 + 0.05 * np.sin(2 * np.pi * resp_hz * onset + resp_phase)
        gain = np.where(template.group[None, :] == QRS, breath[:, None], 1.0)
        parts.append((
            (onset[:, None] + template.start + template.shift * d_qt).ravel(),
            np.broadcast_to(template.rise, shape).ravel(),
            np.maximum(template.flat + template.stretch * d_qt, 0.0).ravel(),
            np.broadcast_to(template.fall, shape).ravel(),
            (template.vector[None, :, :] * gain[:, :, None]).reshape(-1, 3),
        ))
    if len(parts) == 1:
        return parts[0]
    return tuple(np.concatenate(column) for column in zip(*parts, strict=True))


_MEDIAN_GROUPS: dict[str, int] = {"p": P_WAVE, "qrs": QRS, "st": ST_SEGMENT, "t": T_WAVE, "u": U_WAVE}


def _median_beat(morph: Morphology, params: EcgParameters, fs: int) -> MedianBeat:
    """The noise-free dominant beat at the reference RR, rendered per wave group for the reader."""
    c = morph.conducted
    t0 = float(c.start.min()) - 0.06
    t1 = morph.qt_ref_s + 0.30
    n = int(np.ceil((t1 - t0) * fs))
    per_group = rasterise(c.start - t0, c.rise, c.flat, c.fall, c.vector, fs=fs, n_samples=n,
                          bucket=c.group, n_buckets=N_GROUPS)
    groups = {name: per_group[code] for name, code in _MEDIAN_GROUPS.items()}
    groups["repol"] = groups["st"] + groups["t"]
    total = per_group.sum(axis=0)
    return MedianBeat(
        fs=fs, leads=project_to_leads(total), group_vectors=groups,
        group_leads={name: project_to_leads(groups[name]) for name in ("qrs", "t", "u")},
        has_p=params.rhythm in ("sinus", "paced") and params.av_block != "complete",
        rhythm=params.rhythm, av_block=params.av_block,
    )


class EcgRenderError(ValueError):
    """Parameters the renderer cannot turn into a physiological ECG (names the field and value)."""


def _check_inputs(params: EcgParameters, fs: int, n_samples: int) -> None:
    if fs < 100 or n_samples < fs:
        raise EcgRenderError(f"render_ecg: need fs >= 100 Hz and at least 1 s of samples, "
                             f"got fs={fs}, n_samples={n_samples}")
    limits = {
        "heart_rate_bpm": (20.0, 300.0), "pr_ms": (0.0, 600.0), "qrs_ms": (40.0, 300.0),
        "qtc_ms": (200.0, 800.0), "ectopic_rate": (0.0, 1.0), "pvc_fraction": (0.0, 1.0),
        "hrv_sd_ms": (0.0, 500.0), "amplitude_scale": (0.0, 10.0), "lvh_voltage_scale": (0.0, 10.0),
        "t_width_scale": (0.1, 5.0), "t_amplitude_scale": (0.0, 10.0), "p_amplitude_scale": (0.0, 10.0),
    }
    for name, (lo, hi) in limits.items():
        value = float(getattr(params, name))
        if not lo <= value <= hi:  # also rejects NaN
            raise EcgRenderError(f"render_ecg: {name}={value} outside [{lo}, {hi}]")


def render_ecg(params: EcgParameters, rng: np.random.Generator, *, fs: int = 500,
               n_samples: int = 5000) -> tuple[NDArray[np.float32], MachineMeasurements]:
    """signal: (12, n_samples) float32 in mV, leads in MIMIC order (mimic.layout.MIMIC_LEAD_ORDER:
    I, II, III, aVR, aVF, aVL, V1..V6); NaN where params.noise.nan_stretch; measurements as the
    cart would report them (MIMIC machine_measurements units: ms for rr_interval and for
    p_onset/p_end/qrs_onset/qrs_end/t_end measured on a median beat in the MIMIC convention,
    degrees for axes, None = not measurable, e.g. p_axis/p_onset/p_end in AF), plus statement lines."""
    _check_inputs(params, fs, n_samples)
    duration = n_samples / fs
    schedule = beat_schedule(params, rng, duration)
    visible = (schedule.onset >= 0.0) & (schedule.onset < duration)
    dominant = np.isin(schedule.kind, (NORMAL_BEAT, VENTRICULAR_BEAT))
    rr_dominant = schedule.rr_before[visible & dominant]
    # The cart's median beat sits at the median RR (np.sort: np.median's overhead is ~10x on 12 values).
    rr_ref = (float(np.sort(rr_dominant)[rr_dominant.size // 2]) if rr_dominant.size
              else 60.0 / params.heart_rate_bpm)
    morph = build_morphology(params, rng, qt_ref_s=float(qt_for_rr(params.qtc_ms, rr_ref)))
    start, rise, flat, fall, vector = _place_beats(morph, schedule, params,
                                                   resp_phase=float(rng.uniform(0, 2 * np.pi)),
                                                   resp_hz=float(rng.uniform(0.2, 0.33)))
    heart = rasterise(start, rise, flat, fall, vector, fs=fs, n_samples=n_samples)[0]
    if params.rhythm == "atrial_fibrillation" and params.fibrillatory_wave_mv > 0:
        heart += fibrillatory_waves(params.fibrillatory_wave_mv, rng, fs=fs, n_samples=n_samples)
    elif params.rhythm == "atrial_flutter" and params.flutter_wave_mv > 0:
        heart += flutter_waves(flutter_rate_bpm(params), params.flutter_wave_mv, rng, fs=fs, n_samples=n_samples)
    noise = electrode_noise(params.noise, rng, fs=fs, n_samples=n_samples)
    lead_noise = noise_on_independent_leads(noise.potentials)
    independent = _LEAD_VECTORS_F32 @ heart.astype(np.float32) + lead_noise
    signal = expand_to_twelve_leads(independent)
    defects = apply_record_defects(signal, params.noise, rng, fs=fs)
    ventricular = visible & (schedule.kind != P_ONLY_BEAT)
    measurements = read_machine_measurements(
        median=_median_beat(morph, params, fs), rr_intervals_s=schedule.rr_before[ventricular][1:],
        beat_kinds=schedule.kind[ventricular], lead_noise=lead_noise, defects=defects,
        artifact=noise.artifact_electrode is not None, rng=rng,
    )
    return signal, measurements
