"""Protocol options taken from the MDS-ED reference code."""

from __future__ import annotations

from datetime import datetime

import polars as pl

from ecgkt.cohort.config import BuildConfig
from ecgkt.cohort.protocol import clean_lab_rows, lab_upper_limits_by_itemid
from ecgkt.mimic.labs import LAB_BY_NAME


def _rows(values: list[tuple[str, float]]) -> pl.DataFrame:
    return pl.DataFrame({
        "stay_id": [1] * len(values), "itemid": [LAB_BY_NAME[name].itemid for name, _ in values],
        "charttime": [datetime(2150, 1, 1)] * len(values), "valuenum": [v for _, v in values],
    })


def test_mds_ed_rule_drops_values_above_the_per_lab_limits_only() -> None:
    rows = _rows([("Glucose", 2500.0), ("Glucose", 450.0), ("Platelet Count", 2100.0), ("Potassium", 9.5),
                  ("Absolute Lymphocyte Count", 150.0), ("Absolute Basophil Count", 0.1)])
    kept = clean_lab_rows(rows, "mds-ed")
    assert kept["valuenum"].to_list() == [450.0, 9.5, 0.1]
    assert clean_lab_rows(rows, "none").height == rows.height


def test_every_mds_ed_limit_maps_to_a_protocol_lab_and_mds_ed_is_the_default() -> None:
    assert len(lab_upper_limits_by_itemid("mds-ed")) == 10
    assert lab_upper_limits_by_itemid("none") == {}
    assert BuildConfig().lab_outlier_rule == "mds-ed"
