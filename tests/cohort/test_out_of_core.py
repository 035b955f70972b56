"""The out-of-core build (chunks, spills, streamed feature table) gives the same store whatever its bounds."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from test_resume import KilledError, _assert_same_store
from tiny_mimic import TINY_CONFIG

import ecgkt.cohort.pipeline as pipeline
from ecgkt.cohort.features import closest_biometrics
from ecgkt.cohort.report import SkipLog
from ecgkt.cohort.spill import ChunkSpill, candidate_chunks, chunk_bounds
from ecgkt.cohort.tables import (
    clean_vitals,
    load_omr,
    load_triage,
    load_vitalsign,
    stream_omr,
    stream_triage,
    stream_vitalsign,
)
from ecgkt.mimic.layout import VITAL_COLUMNS, MimicFolders

# Every bound as small as it goes: one stay per chunk, a spill after every row, one row per row group.
TINY_BOUNDS = TINY_CONFIG.model_copy(
    update={"statistics_chunk_stays": 1, "spill_rows": 1, "table_row_group_rows": 1, "csv_batch_rows": 1000}
)
# Every bound far above the cohort: one chunk, nothing spilled before the end of a pass, one row group.
HUGE_BOUNDS = TINY_CONFIG.model_copy(
    update={"statistics_chunk_stays": 10**6, "spill_rows": 10**9, "table_row_group_rows": 10**9}
)
BOUNDS = ("statistics_chunk_stays", "spill_rows", "table_row_group_rows", "csv_batch_rows")


def _without_bounds(manifest: dict[str, object]) -> None:
    parameters = manifest["build_parameters"]
    assert isinstance(parameters, dict)
    for knob in BOUNDS:
        parameters.pop(knob)


def test_smallest_and_largest_bounds_build_the_same_store(
    tiny_folders: MimicFolders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flushes: list[int] = []
    original_flush = ChunkSpill.flush

    def counting_flush(self: ChunkSpill) -> None:
        flushes.append(self._buffered)
        original_flush(self)

    monkeypatch.setattr(ChunkSpill, "flush", counting_flush)
    small = pipeline.build_store(tiny_folders, tmp_path / "small", TINY_BOUNDS)
    spills_small = sum(1 for n in flushes if n)
    flushes.clear()
    large = pipeline.build_store(tiny_folders, tmp_path / "large", HUGE_BOUNDS)
    spills_large = sum(1 for n in flushes if n)

    records = pl.read_parquet(small / "records.parquet")
    n_stays = records["stay_id"].n_unique()
    assert n_stays > 5  # so the small build really ran many chunks
    assert spills_small > 10 * spills_large  # and spilled many times; the large one once per table
    assert spills_large <= 2
    groups = [pq.ParquetFile(store / "features.parquet").metadata.num_row_groups for store in (small, large)]
    assert groups[0] >= n_stays and groups[1] == 1  # the small build wrote a row group per chunk (one stay each)
    _assert_same_store(small, large, ignore=_without_bounds)


def test_kill_while_writing_feature_parts_resumes_to_the_same_store(
    tiny_folders: MimicFolders, tiny_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A build killed in the middle of stage A leaves parts but no marker: the resume redoes stage A."""
    config = TINY_CONFIG.model_copy(update={"statistics_chunk_stays": 2})
    original = pipeline.feat.assemble_features
    calls: list[int] = []

    def die_on_third(*args: object, **kwargs: object) -> pl.DataFrame:
        calls.append(1)
        if len(calls) == 3:
            raise KilledError
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline.feat, "assemble_features", die_on_third)
    out = tmp_path / "store"
    with pytest.raises(KilledError):
        pipeline.build_store(tiny_folders, out, config)
    tables = tmp_path / "store.partial" / ".build" / "tables"
    assert len(list((tables / "features").glob("part_*.parquet"))) == 2
    assert not (tables / "done.json").exists()
    assert not list(tables.rglob(".*.tmp"))  # parts are renamed into place, never left half-written
    monkeypatch.setattr(pipeline.feat, "assemble_features", original)
    pipeline.build_store(tiny_folders, out, config)
    _assert_same_store(out, tiny_store, ignore=_without_bounds)


def test_candidate_chunks_are_consecutive_runs_with_at_most_n_stays() -> None:
    stays = pl.Series([5, 5, 7, 9, 9, 9, 5, 11, 12])
    chunks = candidate_chunks(stays, 2)
    assert chunks.tolist() == [0, 0, 0, 1, 1, 1, 1, 2, 2]  # stay 5 returns later: it joins chunk 1 too
    assert chunk_bounds(chunks) == [(0, 3), (3, 7), (7, 9)]
    assert candidate_chunks(stays, 100).tolist() == [0] * 9
    assert chunk_bounds(np.zeros(0, dtype=np.int64)) == []
    with pytest.raises(ValueError, match="positive"):
        candidate_chunks(stays, 0)


def test_spill_files_rows_under_every_chunk_of_their_stay_and_forgets_stale_parts(tmp_path: Path) -> None:
    keys = pl.DataFrame({"stay_id": [1, 2, 2, 3], "_chunk": [0, 0, 1, 1]})
    schema: dict[str, pl.DataType] = {"stay_id": pl.Int64(), "value": pl.Float64()}
    spill = ChunkSpill(tmp_path / "spill", keys, schema, max_rows=2)
    spill.add(pl.DataFrame({"stay_id": [2, 1, 3], "value": [0.2, 0.1, 0.3], "extra": ["x", "y", "z"]}))
    spill.add(pl.DataFrame({"stay_id": [4, 1], "value": [0.4, 0.11]}))  # stay 4 is in no chunk: dropped
    spill.flush()
    assert spill.rows_added == 5
    assert spill.read(0).sort("stay_id", "value").rows() == [(1, 0.1), (1, 0.11), (2, 0.2)]
    assert spill.read(1).sort("stay_id").rows() == [(2, 0.2), (3, 0.3)]
    assert spill.read(7).schema == pl.Schema(schema)
    assert len(list((tmp_path / "spill").rglob("part_*.parquet"))) >= 3  # several spills happened
    again = ChunkSpill(tmp_path / "spill", keys, schema, max_rows=2)  # e.g. a redone stage A
    assert again.read(0).height == 0


def test_streamed_vitalsign_counts_and_examples_equal_the_whole_table(tmp_path: Path) -> None:
    """Bad values in several columns and batches: the streamed pass reports the same examples (in the
    whole table's unpivot order: column, then row) and the same cleaned rows."""
    rng = np.random.default_rng(0)
    n = 60
    columns: dict[str, list[str]] = {name: [f"{v:.0f}" for v in rng.uniform(60, 99, n)] for name in VITAL_COLUMNS}
    for row in (5, 17, 31, 44, 52, 58):  # non-numeric, spread over batches and columns
        columns[VITAL_COLUMNS[row % len(VITAL_COLUMNS)]][row] = "abc"
    for row in (3, 23, 41):
        columns["temperature"][row] = "37.5"  # °C by mistake
    for row in (9, 29, 49, 50, 51, 55, 57):
        columns["heartrate"][row] = "1000"  # implausible
    frame = pl.DataFrame(
        {
            "subject_id": [1] * n,
            "stay_id": [100 + i % 7 for i in range(n)],
            "charttime": ["2180-01-01 08:00:00" if i != 12 else "not a time" for i in range(n)],  # stay 105
            **columns,
            "rhythm": [""] * n,
            "pain": ["0"] * n,
        }
    )
    path = tmp_path / "vitalsign.csv"
    frame.write_csv(path)
    stays = pl.Series([100, 101, 102, 103, 104, 105])  # stay 106 is not in the cohort

    whole_skips, streamed_skips = SkipLog(), SkipLog()
    whole = clean_vitals(load_vitalsign(path, stays, whole_skips, 1000), path, whole_skips)
    parts: list[pl.DataFrame] = []
    stream_vitalsign(path, stays, streamed_skips, 7, parts.append)
    streamed = pl.concat(parts)

    assert streamed_skips.to_json() == whole_skips.to_json()
    assert whole_skips.count("vitals.non_numeric") >= 5 and len(whole_skips.entries) == 4
    order = ["stay_id", "charttime", "name", "value"]
    assert streamed.sort(order).equals(whole.sort(order))


def test_streamed_triage_equals_the_whole_table_with_duplicates_and_bad_values(tmp_path: Path) -> None:
    """Per-batch triage keeps each stay's first row (file order, across batches), counts bad acuities
    before that, and yields the same cleaned triage vitals and skip counts as the whole-table path."""
    n = 40
    frame = pl.DataFrame(
        {
            "subject_id": [1] * n,
            "stay_id": [200 + i % 15 for i in range(n)],  # every stay repeated, in later batches too
            **{name: [str(70 + i) for i in range(n)] for name in VITAL_COLUMNS},
            "pain": ["0"] * n,
            "acuity": [("x" if i % 9 == 2 else "7" if i % 5 == 3 else str(1 + i % 5)) for i in range(n)],
            "chiefcomplaint": ["chest pain"] * n,
        }
    ).with_columns(
        pl.when(pl.int_range(n) % 6 == 1).then(pl.lit("abc")).otherwise(pl.col("heartrate")).alias("heartrate"),
        pl.when(pl.int_range(n) % 7 == 4).then(pl.lit("37.0")).otherwise(pl.col("temperature")).alias("temperature"),
    )
    path = tmp_path / "triage.csv"
    frame.write_csv(path)
    intimes = pl.DataFrame(
        {"stay_id": list(range(200, 214)), "charttime": [datetime(2180, 1, 1, 8)] * 14}  # 214 not in cohort
    ).with_columns(pl.col("charttime").cast(pl.Datetime("us")))
    whole_skips, streamed_skips = SkipLog(), SkipLog()
    triage = load_triage(path, intimes["stay_id"], whole_skips, 1000)
    at_intime = triage.join(intimes, on="stay_id", maintain_order="left").drop("acuity")
    whole_vitals = clean_vitals(at_intime, path, whole_skips)
    parts: list[pl.DataFrame] = []
    streamed = stream_triage(path, intimes, streamed_skips, 6, parts.append)

    assert streamed.equals(triage.select("stay_id", "acuity"))
    assert streamed_skips.to_json() == whole_skips.to_json()  # examples in file order on both sides
    assert whole_skips.count("triage.bad_acuity") > 5 and whole_skips.count("vitals.non_numeric") > 0
    order = ["stay_id", "name", "value"]
    assert pl.concat(parts).sort(order).equals(whole_vitals.sort(order))
    no_vitals_skips = SkipLog()
    assert stream_triage(path, intimes, no_vitals_skips, 6, None).equals(streamed)
    assert no_vitals_skips.count("vitals.non_numeric") == 0 and no_vitals_skips.count("triage.bad_acuity") > 0


def test_streamed_omr_keeps_only_usable_rows_with_the_same_skips_and_biometrics(tmp_path: Path) -> None:
    """Rows far from every ECG of their subject are dropped while streaming, bad rows are still all
    counted with the whole table's examples, and the closest biometrics do not change."""
    rng = np.random.default_rng(1)
    n = 120
    names = ["Weight (Lbs)", "Height (Inches)", "BMI (kg/m2)", "BMI", "Blood Pressure"]
    dates = pl.date_range(pl.date(2180, 1, 1), pl.date(2181, 12, 31), eager=True)
    frame = pl.DataFrame(
        {
            "subject_id": rng.integers(1, 6, n),
            "chartdate": [str(d) for d in dates.sample(n, with_replacement=True, seed=2)],
            "seq_num": [1] * n,
            "result_name": [names[i % len(names)] for i in range(n)],
            "result_value": [f"{v:.1f}" for v in rng.uniform(20, 200, n)],
        }
    ).with_columns(
        pl.when(pl.int_range(n) % 13 == 5).then(pl.lit("n/a")).otherwise(pl.col("result_value")).alias("result_value"),
        pl.when(pl.int_range(n) % 17 == 8).then(pl.lit("bad")).otherwise(pl.col("chartdate")).alias("chartdate"),
    )
    path = tmp_path / "omr.csv"
    frame.write_csv(path)
    records = pl.DataFrame(
        {
            "_cand": [0, 1, 2, 3, 4],
            "subject_id": [1, 1, 2, 4, 7],  # subject 7 has no omr rows; 3 and 5 have no ECG
            "ecg_time": [
                datetime(2180, 3, 1, 9),
                datetime(2181, 6, 1),
                datetime(2180, 9, 9),
                datetime(2181, 2, 2),
                datetime(2180, 5, 5),
            ],
        }
    ).with_columns(pl.col("ecg_time").cast(pl.Datetime("us")), pl.col("_cand").cast(pl.Int64))
    window = 60
    whole_skips, streamed_skips = SkipLog(), SkipLog()
    whole = load_omr(path, records["subject_id"], whole_skips, 1000)
    ecg_dates = records.select("subject_id", pl.col("ecg_time").dt.date().alias("_ecg_date")).unique()
    streamed = stream_omr(path, ecg_dates, window, streamed_skips, 9)

    assert streamed_skips.to_json() == whole_skips.to_json()
    assert whole_skips.count("omr.non_numeric") > 0 and whole_skips.count("omr.bad_chartdate") > 0
    assert whole_skips.count("omr.implausible_value") > 0
    assert 0 < streamed.height < whole.height  # the window really dropped rows
    assert streamed.schema == whole.schema
    expected = closest_biometrics(records, whole, window).sort("_cand")
    assert closest_biometrics(records, streamed, window).sort("_cand").equals(expected)
    assert expected.drop("_cand").null_count().sum_horizontal().item() < 3 * records.height  # some found
