"""Tabular features: the 9 statistics of a known series, biometrics, race groups, vitals cleaning."""

from __future__ import annotations

import math
from datetime import date, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ecgkt.cohort import features as feat
from ecgkt.cohort.report import SkipLog
from ecgkt.cohort.tables import clean_vitals
from ecgkt.mimic.labs import LAB_ITEMS


def _series(key: list[int], t: list[float], v: list[float], name: str = "Potassium") -> pl.DataFrame:
    return pl.DataFrame({"stay_id": key, "name": [name] * len(key), "t": t, "value": v})


def test_statistics_of_a_known_series_do_not_depend_on_row_order() -> None:
    frame = _series([1, 1, 1], [60.0, 0.0, 30.0], [7.0, 4.0, 5.0])
    row = feat.series_statistics(frame, "stay_id").row(0, named=True)
    assert row["Potassium__mean"] == pytest.approx(16 / 3)
    assert row["Potassium__median"] == 5.0
    assert row["Potassium__min"] == 4.0
    assert row["Potassium__max"] == 7.0
    assert row["Potassium__std"] == pytest.approx(math.sqrt(7 / 3))
    assert row["Potassium__first"] == 4.0
    assert row["Potassium__last"] == 7.0
    assert row["Potassium__rate"] == pytest.approx(0.75)
    assert row["Potassium__slope"] == pytest.approx(0.05)  # 3 units over 60 minutes, least squares


@pytest.mark.parametrize("chunk_stays", [1, 3, 1000])
def test_chunked_statistics_equal_the_one_shot_computation(chunk_stays: int) -> None:
    rng = np.random.default_rng(0)
    n = 400
    frame = pl.DataFrame(
        {
            "stay_id": rng.integers(30_000_000, 30_000_040, n),  # unsorted, repeated stays
            "name": rng.choice(["Potassium", "Sodium", "heartrate"], n).tolist(),
            "t": rng.uniform(0, 90, n).round(0),
            "value": rng.normal(5, 2, n),
        }
    )
    frame = frame.filter(~((pl.col("name") == "Sodium") & (pl.col("stay_id") < 30_000_010)))  # absent in chunk 1
    names = ("Potassium", "Sodium", "heartrate", "Glucose")  # Glucose: in no chunk at all
    columns = [f"{name}__{stat}" for name in names for stat in feat.STATISTICS]
    one_shot = feat.series_statistics(frame, "stay_id").sort("stay_id")
    chunked = feat.chunked_series_statistics(frame, columns, chunk_stays)
    assert chunked["stay_id"].to_list() == one_shot["stay_id"].to_list()
    assert chunked.columns == ["stay_id", *columns]
    for name in columns:
        absent = pl.Series([None] * one_shot.height, dtype=pl.Float32)
        expected = one_shot[name].cast(pl.Float32) if name in one_shot.columns else absent
        np.testing.assert_array_equal(chunked[name].to_numpy(), expected.to_numpy())


def test_chunked_statistics_of_nothing_is_an_empty_typed_frame() -> None:
    empty = pl.DataFrame(schema={"stay_id": pl.Int64, "name": pl.String, "t": pl.Float64, "value": pl.Float64})
    out = feat.chunked_series_statistics(empty, ["Potassium__mean"], 10)
    assert out.height == 0 and out.schema == pl.Schema({"stay_id": pl.Int64, "Potassium__mean": pl.Float32})
    with pytest.raises(ValueError, match="chunk_stays must be positive"):
        feat.chunked_series_statistics(empty, ["Potassium__mean"], 0)


def test_degenerate_series_give_nan_not_crash() -> None:
    frame = pl.concat(
        [
            _series([1], [10.0], [4.0]),  # one point
            _series([2, 2], [5.0, 5.0], [0.0, 2.0]),  # same time, first value 0
        ]
    )
    out = {r["stay_id"]: r for r in feat.series_statistics(frame, "stay_id").iter_rows(named=True)}
    assert out[1]["Potassium__std"] is None and out[1]["Potassium__slope"] is None
    assert out[1]["Potassium__rate"] == 0.0
    assert out[2]["Potassium__slope"] is None  # no spread in time
    assert out[2]["Potassium__rate"] is None  # division by a first value of 0
    assert out[2]["Potassium__first"] == 0.0 and out[2]["Potassium__last"] == 2.0  # ties: smaller value first


def test_catalogue_names_groups_and_size() -> None:
    defs = feat.feature_catalogue()
    names = [d.name for d in defs]
    assert len(names) == len(set(names))
    assert "Potassium__mean" in names and "heartrate__max" in names
    assert len([d for d in defs if d.group == "lab"]) == 9 * len(LAB_ITEMS)
    assert {d.name for d in defs if d.kind == "categorical"} == {"gender", "race"}
    assert all(d.group == "routine" for d in defs if d.name.split("__")[0] not in {lab.name for lab in LAB_ITEMS})


@pytest.mark.parametrize(
    ("race", "group"),
    [
        ("WHITE - OTHER EUROPEAN", "white"),
        ("BLACK/CAPE VERDEAN", "black"),
        ("HISPANIC OR LATINO", "hispanic"),
        ("SOUTH AMERICAN", "hispanic"),
        ("ASIAN - KOREAN", "asian"),
        ("AMERICAN INDIAN/ALASKA NATIVE", "other"),
        ("UNABLE TO OBTAIN", None),
        ("PATIENT DECLINED TO ANSWER", None),
        (None, None),
    ],
)
def test_race_groups(race: str | None, group: str | None) -> None:
    assert feat.race_group(race) == group


def test_closest_biometric_within_window_with_ties_averaged() -> None:
    records = pl.DataFrame(
        {"_cand": [0, 1], "subject_id": [1, 2], "ecg_time": [datetime(2180, 5, 10, 9), datetime(2180, 5, 10, 9)]}
    )
    omr = pl.DataFrame(
        {
            "subject_id": [1, 1, 1, 1, 2],
            "chartdate": [date(2180, 5, 7), date(2180, 5, 13), date(2180, 5, 30), date(2180, 5, 10), date(2180, 7, 1)],
            "feature": ["weight_kg", "weight_kg", "weight_kg", "height_cm", "weight_kg"],
            "value": [70.0, 74.0, 90.0, 170.0, 80.0],
        }
    )
    out = feat.closest_biometrics(records, omr, window_days=30).sort("_cand")
    assert out["weight_kg"].to_list() == [72.0, None]  # ±3 days tie → median; subject 2 is 52 days away
    assert out["height_cm"].to_list() == [170.0, None]
    assert out["bmi"].to_list() == [None, None]


def test_vitals_cleaning_converts_celsius_and_drops_implausible(tmp_path: Path) -> None:
    wide = pl.DataFrame(
        {
            "stay_id": [1, 1, 1],
            "charttime": [datetime(2180, 1, 1, 8, m) for m in (0, 10, 20)],
            "_row": [1, 2, 3],
            "temperature": ["37.0", "986", None],
            "heartrate": ["80", "1000", "abc"],
            "resprate": [None, None, None],
            "o2sat": ["99", "101", None],
            "sbp": [None, None, None],
            "dbp": [None, None, None],
        }
    )
    skips = SkipLog()
    long = clean_vitals(wide, tmp_path / "vitalsign.csv.gz", skips)
    values = {(r["name"], r["charttime"].minute): r["value"] for r in long.iter_rows(named=True)}
    assert values[("temperature", 0)] == pytest.approx(98.6)
    assert ("temperature", 10) not in values and ("heartrate", 10) not in values and ("o2sat", 10) not in values
    assert values[("heartrate", 0)] == 80.0
    assert skips.count("vitals.celsius_converted") == 1
    assert skips.count("vitals.implausible_value") == 3
    assert skips.count("vitals.non_numeric") == 1


def test_training_statistics_ignore_other_folds() -> None:
    frame = pl.DataFrame({"age": [10.0, 20.0, 1000.0, None], "gender": [0.0, 1.0, 1.0, None]})
    defs = [feat.FeatureDef("age", "routine"), feat.FeatureDef("gender", "routine", "categorical", ("F", "M"))]
    specs = feat.feature_specs(frame, np.array([True, True, False, True]), defs)
    assert specs[0].median == 15.0 and specs[0].mean == 15.0
    assert specs[0].observed_fraction == pytest.approx(2 / 3)
    assert specs[1].kind == "categorical" and specs[1].categories == ["F", "M"] and specs[1].median is None
