"""Every dropped or altered row is counted under a named rule, and empty tables are warned about.

Adversarial inputs from issue 18: a labevents row cut to 8 of its 16 fields (dropped uncounted
before) and one with too many fields (an error before) — now one rule for both; an empty
d_labitems (2,487 rows reported "skipped" while they were kept); a duplicate patient with
another gender/age; an edstays row without subject_id; malformed diagnosis rows; an empty
labevents (no warning before).
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from tiny_mimic import TINY_CONFIG, TinyMimic
from typer.testing import CliRunner

from ecgkt.cli import app
from ecgkt.cohort.pipeline import build_store
from ecgkt.cohort.report import SkipLog
from ecgkt.cohort.sources import BuildInputError, stream_csv
from ecgkt.mimic.layout import MimicFolders

MakeMimic = Callable[..., MimicFolders]
COLUMNS = {"a": pl.Int64, "b": pl.String, "d": pl.String}


def _report(store: Path) -> dict[str, object]:
    report = json.loads((store / "build_report.json").read_text())
    assert isinstance(report, dict)
    return report


def _skips(store: Path) -> dict[str, dict[str, object]]:
    skips = _report(store)["skips"]
    assert isinstance(skips, dict)
    return skips


def _count(store: Path, key: str) -> int:
    entry = _skips(store).get(key)
    return int(str(entry["count"])) if entry else 0


def _edit_lines(path: Path, edit: Callable[[list[str]], None]) -> None:
    """Edit the text lines of a .csv.gz (line 0 is the header)."""
    with gzip.open(path, "rt", newline="") as handle:
        lines = handle.read().splitlines()
    edit(lines)
    with gzip.open(path, "wt", newline="") as handle:
        handle.write("\n".join(lines) + "\n")


# ---- rows with the wrong number of fields --------------------------------------------------------


def _csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("row", ["3,z", "3,z,w,x,extra"], ids=["too_few", "too_many"])
def test_wrong_field_count_is_one_rule_for_too_few_and_too_many(tmp_path: Path, row: str) -> None:
    path = _csv(tmp_path / "t.csv", f'a,b,c,d\n1,x,"q,r",y\n2,y,,\n{row}\n4,"u, ""v""",s,t\n')
    skips = SkipLog()
    frame = pl.concat(stream_csv(path, COLUMNS, batch_rows=2, skips=skips))
    assert frame["_row"].to_list() == [1, 2, 4]  # file row numbers survive the dropped row
    assert frame["b"].to_list() == ["x", "y", 'u, "v"']
    assert frame["d"].to_list() == ["y", None, "t"]
    assert skips.count("csv.wrong_field_count") == 1
    fields = len(row.split(","))
    assert skips.entries["csv.wrong_field_count"].examples == [f"t.csv row 3: {fields} fields, the header has 4"]
    assert skips.rows_read[str(path)] == 3
    # without a SkipLog (outside the builder) both are the same error, naming the row
    with pytest.raises(BuildInputError, match=rf"t.csv: data row 3 has {fields} fields, the header has 4"):
        list(stream_csv(path, COLUMNS))


def test_empty_line_is_a_counted_row_and_a_good_file_takes_the_fast_path(tmp_path: Path) -> None:
    skips = SkipLog()
    path = _csv(tmp_path / "e.csv", "a,b,c,d\n1,x,y,z\n\n2,x,y,z\n")
    assert pl.concat(stream_csv(path, COLUMNS, skips=skips))["_row"].to_list() == [1, 3]
    assert skips.count("csv.wrong_field_count") == 1
    good = io.StringIO()
    good.write("a,b,c,d\n")
    for i in range(5000):
        good.write(f'{i},"text, with comma",,"{i}"\n')
    path = _csv(tmp_path / "g.csv", good.getvalue())
    skips = SkipLog()
    frame = pl.concat(stream_csv(path, COLUMNS, skips=skips))
    assert frame.height == 5000 and skips.entries == {}


def test_labevents_row_cut_short_and_row_too_long_are_both_counted(make_mimic: MakeMimic, tmp_path: Path) -> None:
    folders = make_mimic(6)

    def damage(lines: list[str]) -> None:
        lines[6] = ",".join(lines[6].split(",")[:8])  # cut to 8 of 16 fields (patient 1's potassium)
        lines[12] = lines[12] + ",surplus"  # 17 fields

    _edit_lines(folders.hosp_table("labevents"), damage)
    _edit_lines(folders.ed_table("edstays"), lambda lines: lines.__setitem__(3, lines[3][:20]))
    store = build_store(folders, tmp_path / "store", TINY_CONFIG)
    entry = _skips(store)["csv.wrong_field_count"]
    assert entry["count"] == 3 and entry["action"] == "row skipped"
    examples = entry["examples"]
    assert isinstance(examples, list)
    assert "edstays.csv.gz row 3: " in examples[0]
    assert "labevents.csv.gz row 6: 8 fields, the header has 16" in examples
    assert "labevents.csv.gz row 12: 17 fields, the header has 16" in examples
    labevents = _report(store)["labevents"]
    assert isinstance(labevents, dict) and labevents["labevents_rows"] == 6 * 5 - 2


# ---- d_labitems and labevents --------------------------------------------------------------------


def test_empty_d_labitems_keeps_every_row_and_says_so(make_mimic: MakeMimic, tmp_path: Path) -> None:
    reference = build_store(make_mimic(8), tmp_path / "reference", TINY_CONFIG)

    def empty_catalogue(mimic: TinyMimic) -> None:
        mimic.rows("d_labitems").clear()

    store = build_store(make_mimic(8, empty_catalogue), tmp_path / "store", TINY_CONFIG)
    # before: labevents.unknown_itemid claimed every row skipped; the rows were (and are) used
    assert _count(store, "labevents.unknown_itemid") == 0
    assert _count(store, "d_labitems.missing_protocol_item") == 0
    features = pl.read_parquet(store / "features.parquet")
    assert features.equals(pl.read_parquet(reference / "features.parquet"))
    warnings = _report(store)["warnings"]
    assert isinstance(warnings, list) and len(warnings) == 1
    assert "d_labitems.csv.gz: no usable data row" in warnings[0]
    assert "## Warnings" in (store / "cohort_report.md").read_text()


def test_unknown_itemid_is_noted_as_kept(make_mimic: MakeMimic, tmp_path: Path) -> None:
    def drop_potassium(mimic: TinyMimic) -> None:
        rows = mimic.rows("d_labitems")
        rows[:] = [row for row in rows if row["label"] != "Potassium"]

    store = build_store(make_mimic(4, drop_potassium), tmp_path / "store", TINY_CONFIG)
    entry = _skips(store)["labevents.unknown_itemid"]
    assert entry["count"] == 4 * 2 and entry["action"] == "kept"
    assert _skips(store)["d_labitems.missing_protocol_item"]["action"] == "kept"
    assert pl.read_parquet(store / "features.parquet")["Potassium__mean"].is_not_null().any()


def test_empty_labevents_is_warned(make_mimic: MakeMimic, tmp_path: Path) -> None:
    def no_labs(mimic: TinyMimic) -> None:
        mimic.rows("labevents").clear()

    folders = make_mimic(4, no_labs)
    root = folders.ecg.parent
    options = ["--workers", "1", "--lab-label-min-positives", "0", "--lab-label-min-negatives", "0"]
    out = tmp_path / "store"
    result = CliRunner().invoke(app, ["build", "--synthetic", str(root), "--out", str(out), "--quiet", *options])
    assert result.exit_code == 0, result.output
    assert "warning: " in result.output and "labevents.csv.gz: no usable data row" in result.output
    warnings = _report(out)["warnings"]
    assert isinstance(warnings, list) and any("no lab-abnormality label" in w for w in warnings)


def test_missing_and_non_finite_valuenum_are_counted(make_mimic: MakeMimic, tmp_path: Path) -> None:
    def values(mimic: TinyMimic) -> None:
        labs = mimic.rows("labevents")
        labs[5]["valuenum"] = ""  # patient 1, potassium at +15 min: a text-only result
        labs[6]["valuenum"] = "inf"  # dropped uncounted before
        labs[7]["valuenum"] = "NaN"

    store = build_store(make_mimic(4, values), tmp_path / "store", TINY_CONFIG)
    assert _count(store, "labevents.missing_valuenum") == 1
    assert _count(store, "labevents.non_numeric_valuenum") == 2


# ---- duplicates, missing ids, malformed codes ----------------------------------------------------


def test_duplicates_missing_ids_and_malformed_codes_are_counted(make_mimic: MakeMimic, tmp_path: Path) -> None:
    def corrupt(mimic: TinyMimic) -> None:
        patients = mimic.rows("patients")
        patients.append({**patients[1], "gender": "F", "anchor_age": 99})  # conflicting: first row wins
        patients.append(dict(patients[2]))  # identical duplicate
        mimic.rows("edstays")[3]["subject_id"] = None  # no subject: this stay can match no ECG
        mimic.rows("triage").append(dict(mimic.rows("triage")[2]))
        diagnosis = mimic.rows("diagnosis")
        diagnosis.append({**diagnosis[0], "icd_code": ""})
        diagnosis.append({**diagnosis[0], "icd_code": "4?"})
        mimic.rows("diagnoses_icd").append({**mimic.rows("diagnoses_icd")[0], "icd_code": "I5"})

    folders = make_mimic(6, corrupt)
    lines = folders.record_list.read_text().splitlines()
    lines[2] = "," + lines[2].split(",", 1)[1]  # record_list row 2 without subject_id
    folders.record_list.write_text("\n".join(lines) + "\n")
    store = build_store(folders, tmp_path / "store", TINY_CONFIG)

    skips = _skips(store)
    assert skips["patients.conflicting_duplicate"]["count"] == 1
    example = skips["patients.conflicting_duplicate"]["examples"][0]  # type: ignore[index]
    assert "gender='F' (first row: 'M')" in example and "anchor_age=99.0 (first row: 37.0)" in example
    assert skips["patients.duplicate_subject_id"]["count"] == 1
    assert skips["edstays.missing_id"]["count"] == 1
    assert skips["record_list.missing_id"]["count"] == 1
    assert skips["triage.duplicate_stay_id"]["count"] == 1
    assert skips["icd.malformed_code"]["count"] == 3
    records = pl.read_parquet(store / "records.parquet")
    patient_1 = records.filter(pl.col("subject_id") == 10000037)
    assert patient_1["gender"].to_list() == ["M"] and patient_1["age"].to_list() == [37.0]  # the first row won
    assert records.filter(pl.col("stay_id") == 30000003).height == 0
