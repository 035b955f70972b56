"""CardioLab rule on a known table, and the streaming labevents pass behind it."""

from __future__ import annotations

import gzip
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ecgkt.cohort import lab_labels
from ecgkt.cohort.labevents import _weighted_median, stream_labevents
from ecgkt.cohort.report import SkipLog
from ecgkt.mimic.labs import LAB_BY_NAME
from ecgkt.mimic.layout import LABEVENTS_COLUMNS

K = LAB_BY_NAME["Potassium"].itemid
HB = LAB_BY_NAME["Hemoglobin"].itemid
ECG = datetime(2180, 1, 1, 12, 0)


def _rows(stay: int, itemid: int, minutes: float, value: float) -> dict[str, object]:
    return {"stay_id": stay, "itemid": itemid, "charttime": ECG + timedelta(minutes=minutes), "valuenum": value}


def test_closest_value_within_sixty_minutes() -> None:
    records = pl.DataFrame({"_cand": [0, 1, 2], "stay_id": [1, 2, 3], "ecg_time": [ECG, ECG, ECG]})
    rows = pl.DataFrame(
        [
            _rows(1, K, -50, 6.0),
            _rows(1, K, 10, 3.0),
            _rows(1, K, 40, 5.5),  # closest: +10 min → 3.0
            _rows(2, K, -20, 4.0),
            _rows(2, K, 20, 6.0),  # tie → earlier → 4.0
            _rows(3, K, 61, 7.0),  # outside ±60 → unknown
        ]
    )
    closest = lab_labels.closest_values(records, rows, 60.0)
    values = dict(zip(closest["_cand"].to_list(), closest["value"].to_list(), strict=True))
    assert values == {0: 3.0, 1: 4.0}


def test_low_high_unknown_from_median_reference_range() -> None:
    closest = pl.DataFrame({"_cand": [0, 1, 2, 0], "itemid": [K, K, K, HB], "value": [3.0, 4.0, 5.6, 12.0]})
    ranges = {"Potassium": (3.3, 5.1), "Hemoglobin": (13.7, None)}
    names, matrix = lab_labels.label_candidates(closest, ranges, n_records=4)
    assert names == ["Hemoglobin_low", "Potassium_low", "Potassium_high"]
    np.testing.assert_array_equal(matrix[:, 1], [1, 0, 0, np.nan])
    np.testing.assert_array_equal(matrix[:, 2], [0, 0, 1, np.nan])
    np.testing.assert_array_equal(matrix[:, 0], [1, np.nan, np.nan, np.nan])


def test_labels_need_positives_and_negatives_in_both_evaluation_folds() -> None:
    folds = np.array([0, 0, 1, 1, 1, 2, 2, 2])
    matrix = np.array(
        [
            [1, 1, 1],
            [0, 0, 0],
            [1, 1, 1],  # fold 1
            [0, 0, np.nan],
            [np.nan, 0, 0],
            [1, 0, 1],  # fold 2
            [0, 0, 1],
            [np.nan, np.nan, 1],
        ],
        dtype=np.float32,
    )
    kept = lab_labels.select_lab_labels(["a", "b", "c"], matrix, folds, (1, 2), 1, 1)
    assert kept == [0]  # b has no positive in fold 2; c has no negative in fold 2


def test_weighted_median_matches_numpy() -> None:
    values = np.array([3.5, 3.3, 3.4])
    counts = np.array([1, 5, 2])
    expanded = np.repeat(values, counts)
    assert _weighted_median(values, counts) == pytest.approx(np.median(expanded))
    assert _weighted_median(np.array([1.0, 2.0]), np.array([1, 1])) == 1.5


def _write_labevents(path: Path, rows: list[dict[str, object]]) -> Path:
    with gzip.open(path, "wt") as handle:
        handle.write(",".join(LABEVENTS_COLUMNS) + "\n")
        for row in rows:
            handle.write(",".join("" if row.get(c) is None else str(row.get(c)) for c in LABEVENTS_COLUMNS) + "\n")
    return path


def test_streaming_pass_counts_ranges_unknown_items_and_bad_values(tmp_path: Path) -> None:
    intime = datetime(2180, 1, 1, 8, 0)

    def row(
        subject: int, itemid: int, minutes: float, value: object, low: object = 3.3, high: object = 5.1
    ) -> dict[str, object]:
        return {
            "subject_id": subject,
            "itemid": itemid,
            "charttime": (intime + timedelta(minutes=minutes)).strftime("%Y-%m-%d %H:%M:%S"),
            "valuenum": value,
            "ref_range_lower": low,
            "ref_range_upper": high,
        }

    rows = [
        row(1, K, 10, 4.0),
        row(1, K, 30, "abc"),
        row(1, K, -61, 4.2),
        row(1, K, 151, 4.2),  # in, bad, out, out
        row(2, K, 10, 4.0, 3.5, 5.3),
        row(2, K, 10, 4.0, 3.5, 5.3),  # not a cohort subject: only ranges
        row(1, 99999, 10, 1.0),
        row(1, K, 20, 4.1, "", ""),  # unknown itemid; row without a range
    ]
    rows.append({**row(1, K, 0, 4.4), "charttime": "yesterday"})
    path = _write_labevents(tmp_path / "labevents.csv.gz", rows)
    stays = pl.DataFrame({"subject_id": [1], "stay_id": [11], "intime": [intime]})
    skips = SkipLog()
    extract = stream_labevents(
        path, stays, known_itemids={K}, before_minutes=60, after_minutes=150, skips=skips, batch_rows=1000
    )
    assert extract.rows_read == 9
    assert extract.rows["valuenum"].to_list() == [4.0, 4.1]
    assert extract.rows["stay_id"].to_list() == [11, 11]
    # ranges over ALL rows of the item (cohort or not): lower values 3.3×6, 3.5×2 → median 3.3
    assert extract.reference_ranges["Potassium"] == (3.3, 5.1)
    assert skips.count("labevents.unknown_itemid") == 1
    assert skips.count("labevents.non_numeric_valuenum") == 1
    assert skips.count("labevents.bad_charttime") == 1
    assert "row 2" in skips.entries["labevents.non_numeric_valuenum"].examples[0]
