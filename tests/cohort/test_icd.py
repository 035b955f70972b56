"""Diagnosis labels: truncation, X stripping, propagation, ICD-9 mapping, selection, titles."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import polars as pl

from ecgkt.cohort import icd
from ecgkt.cohort.report import SkipLog


def test_truncation_strips_placeholder_x_and_keeps_three_characters() -> None:
    assert icd.truncate_code("I4891") == "I4891"
    assert icd.truncate_code("S72001A") == "S7200"
    assert icd.truncate_code("T148XXA") == "T148"
    assert icd.truncate_code("X58XXXA") == "X58"
    assert icd.truncate_code("i48.91") == "I4891"


def test_propagation_to_every_three_to_five_character_ancestor() -> None:
    assert icd.ancestors("I4891") == ["I48", "I489", "I4891"]
    assert icd.labels_from_codes(["I4891", "I509", "E875"]) == {"I48", "I489", "I4891", "I50", "I509", "E87", "E875"}
    assert icd.labels_from_codes(["S72001A"]) == {"S72", "S720", "S7200"}
    assert icd.ancestors("I1") == []


def test_icd9_codes_map_to_icd10() -> None:
    mapping = icd.map_icd9_to_icd10(["42731", "4280", "25000", "99999999"])
    assert mapping["42731"] == "I4891"
    assert mapping["4280"] == "I509"
    assert mapping["25000"] == "E119"
    assert mapping["99999999"] is None


def _gz(path: Path, text: str) -> Path:
    with gzip.open(path, "wt") as handle:
        handle.write(text)
    return path


def test_hospital_codes_win_for_admitted_stays_and_icd9_is_mapped(tmp_path: Path) -> None:
    ed = _gz(
        tmp_path / "diagnosis.csv.gz",
        "subject_id,stay_id,seq_num,icd_code,icd_version,icd_title\n"
        "1,101,1,42731,9,AF\n"  # ED-only stay, ICD-9 → I4891
        "2,102,1,R079,10,CHEST PAIN\n"  # admitted: replaced by hospital codes
        "3,103,1,E875,10,HYPERK\n"  # admitted but the admission has no codes: ED codes stay
        "4,104,1,V9999,9,NONSENSE\n"  # unmapped ICD-9
        "4,104,2,I10,11,BADVERSION\n",
    )
    hosp = _gz(
        tmp_path / "diagnoses_icd.csv.gz",
        "subject_id,hadm_id,seq_num,icd_code,icd_version\n2,202,1,I509,10\n2,202,2,4280,9\n9,999,1,I10,10\n",
    )
    stays = pl.DataFrame({"stay_id": [101, 102, 103, 104], "hadm_id": [None, 202, 203, None]})
    skips = SkipLog()
    labels = icd.load_stay_codes(ed, hosp, stays, skips)
    by_stay = {s: set(g["label"].to_list()) for (s,), g in labels.group_by("stay_id")}
    assert by_stay[101] == {"I48", "I489", "I4891"}
    assert by_stay[102] == {"I50", "I509"}
    assert by_stay[103] == {"E87", "E875"}
    assert 104 not in by_stay
    assert skips.count("icd.unmapped_icd9") == 1
    assert skips.count("icd.bad_version") == 1
    assert skips.count("icd.no_codes") == 1


def test_label_matrix_and_minimum_count() -> None:
    stay_labels = pl.DataFrame({"stay_id": [1, 1, 2, 3], "label": ["I48", "I489", "I48", "E87"]})
    labels, matrix = icd.label_matrix(pl.Series([1, 2, 2, 3, 4]), stay_labels)
    assert labels == ["E87", "I48", "I489"]
    dense = matrix.toarray()
    np.testing.assert_array_equal(dense[:, 1], [1, 1, 1, 0, 0])
    np.testing.assert_array_equal(dense[4], [0, 0, 0])
    kept, sub = icd.select_frequent(labels, matrix, min_count=2)
    assert kept == ["I48"]
    assert sub.shape == (5, 1) and sub.dtype == np.float32


def test_titles_come_from_simple_icd_10_cm_then_mimic() -> None:
    titles = icd.code_titles(["I48", "I4891", "ZZZ9"], {"ZZZ9": "from MIMIC"})
    assert titles["I48"] == "Atrial fibrillation and flutter"
    assert titles["I4891"] == "Unspecified atrial fibrillation"
    assert titles["ZZZ9"] == "from MIMIC"
