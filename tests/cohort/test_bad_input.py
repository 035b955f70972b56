"""Bad input: clear errors naming file (and row), or counted skips; `ecgkt build` exits 2 without traceback."""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from tiny_mimic import TINY_CONFIG, TinyMimic
from typer.testing import CliRunner

from ecgkt.cli import app
from ecgkt.cohort.pipeline import build_store
from ecgkt.cohort.sources import BuildInputError, resolve_sources
from ecgkt.mimic.layout import MimicFolders

MakeMimic = Callable[..., MimicFolders]


def test_missing_folders_are_named(tmp_path: Path) -> None:
    with pytest.raises(BuildInputError, match=r"--hosp .*hosp: folder does not exist"):
        resolve_sources(MimicFolders(tmp_path, tmp_path / "hosp", tmp_path))


def test_folder_that_is_not_mimic_shaped_lists_expected_files(tmp_path: Path) -> None:
    for name in ("ecg", "hosp", "ed"):
        (tmp_path / name).mkdir()
    with pytest.raises(BuildInputError) as caught:
        resolve_sources(MimicFolders(tmp_path / "ecg", tmp_path / "hosp", tmp_path / "ed"))
    message = str(caught.value)
    assert message.startswith("not MIMIC-shaped")
    for expected in ("record_list.csv", "labevents.csv.gz", "edstays.csv.gz", "omr.csv.gz", "diagnosis.csv.gz"):
        assert expected in message


def test_missing_file_with_hint_for_the_parent_folder(make_mimic: MakeMimic) -> None:
    folders = make_mimic(3)
    (folders.hosp / "omr.csv.gz").unlink()
    with pytest.raises(BuildInputError, match=r"--hosp .*expected omr.csv.gz of the MIMIC-IV hosp module"):
        resolve_sources(folders)
    wrong = MimicFolders(folders.ecg, folders.hosp.parent, folders.ed)
    with pytest.raises(BuildInputError, match=r"pass --hosp .*hosp\)"):
        resolve_sources(wrong)


def test_missing_column_is_named(make_mimic: MakeMimic) -> None:
    folders = make_mimic(3)
    path = folders.ed_table("edstays")
    with gzip.open(path, "rt") as handle:
        text = handle.read()
    with gzip.open(path, "wt") as handle:
        handle.write(text.replace("intime", "in_time", 1))
    with pytest.raises(BuildInputError, match=r"edstays.csv.gz: missing column\(s\) intime"):
        resolve_sources(folders)


def test_truncated_gzip_names_the_file(make_mimic: MakeMimic, tmp_path: Path) -> None:
    folders = make_mimic(3)
    path = folders.hosp_table("labevents")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BuildInputError, match=r"labevents.csv.gz: cannot be read as CSV .*truncated or corrupt"):
        build_store(folders, tmp_path / "store", TINY_CONFIG)


def test_non_integer_id_names_file_row_and_value(make_mimic: MakeMimic, tmp_path: Path) -> None:
    def corrupt(mimic: TinyMimic) -> None:
        mimic.rows("labevents")[4]["subject_id"] = "ten"

    folders = make_mimic(3, corrupt)
    with pytest.raises(
        BuildInputError, match=r"labevents.csv.gz: data row 5: column subject_id = 'ten' is not an integer"
    ):
        build_store(folders, tmp_path / "store", TINY_CONFIG)


def test_impossible_times_and_duplicates_are_counted(make_mimic: MakeMimic, tmp_path: Path) -> None:
    import json

    def corrupt(mimic: TinyMimic) -> None:
        mimic.rows("edstays")[0]["intime"] = "31/12/2180"
        mimic.rows("vitalsign")[5]["charttime"] = "noon"
        mimic.rows("omr")[4]["result_value"] = "heavy"  # patient 1 (patient 0 loses its stay)
        mimic.rows("triage")[1]["acuity"] = 9
        mimic.rows("edstays").append(dict(mimic.rows("edstays")[1]))

    folders = make_mimic(8, corrupt)
    lines = folders.record_list.read_text().splitlines()
    lines[2] = lines[2].replace("2180-", "21800-", 1)  # record_list row 2: an unparseable ecg_time
    folders.record_list.write_text("\n".join(lines) + "\n")
    out = build_store(folders, tmp_path / "store", TINY_CONFIG)
    skips = json.loads((out / "build_report.json").read_text())["skips"]
    assert skips["edstays.bad_intime"]["count"] == 1
    assert "edstays.csv.gz row 1" in skips["edstays.bad_intime"]["examples"][0]
    assert skips["edstays.duplicate_stay_id"]["count"] == 1
    assert skips["record_list.bad_ecg_time"]["count"] == 1
    assert skips["vitalsign.bad_charttime"]["count"] == 1
    assert skips["omr.non_numeric"]["count"] == 1
    assert skips["triage.bad_acuity"]["count"] == 1


def test_empty_cohort_is_an_error(make_mimic: MakeMimic, tmp_path: Path) -> None:
    def shift(mimic: TinyMimic) -> None:
        for row in mimic.rows("edstays"):
            row["intime"] = "2100-01-01 00:00:00"
            row["outtime"] = "2100-01-01 05:00:00"

    with pytest.raises(BuildInputError, match="cohort is empty"):
        build_store(make_mimic(3, shift), tmp_path / "store", TINY_CONFIG)


def test_existing_output_needs_overwrite(tiny_folders: MimicFolders, tiny_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "store"
    shutil.copytree(tiny_store, out)
    with pytest.raises(BuildInputError, match="already exists; pass --overwrite"):
        build_store(tiny_folders, out, TINY_CONFIG)
    assert build_store(tiny_folders, out, TINY_CONFIG, overwrite=True) == out
    assert not (tmp_path / "store.old").exists()


def test_cli_reports_errors_in_one_line_with_exit_code_2(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["build", "--synthetic", str(tmp_path), "--out", str(tmp_path / "store")])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "mimic-iv-ecg: folder does not exist" in result.output
    result = runner.invoke(app, ["build", "--ecg", str(tmp_path), "--out", str(tmp_path / "store")])
    assert result.exit_code == 2 and "missing --hosp, --ed" in result.output


def test_cli_builds_a_store_and_prints_the_summary(tiny_folders: MimicFolders, tmp_path: Path) -> None:
    root = tiny_folders.ecg.parent
    result = CliRunner().invoke(
        app,
        [
            "build",
            "--synthetic",
            str(root),
            "--out",
            str(tmp_path / "store"),
            "--workers",
            "1",
            "--quiet",
            "--lab-label-min-positives",
            "0",
            "--lab-label-min-negatives",
            "0",
            "--min-label-count",
            "5",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "ECGs in the store" in result.output and "cohort.no_matching_stay" in result.output
    assert (tmp_path / "store" / "manifest.json").is_file()


def test_every_skip_rule_is_documented() -> None:
    from ecgkt.cohort.report import SKIP_RULES

    docs = (Path(__file__).parents[2] / "docs" / "data.md").read_text()
    missing = [key for key in SKIP_RULES if f"`{key}`" not in docs]
    assert not missing
