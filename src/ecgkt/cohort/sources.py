"""The builder's inputs: which MIMIC files it needs, checking them, fingerprinting and streaming them.

Everything that touches raw CSV bytes lives here so that every input problem becomes the same
kind of error: a `BuildInputError` naming the file (and the row, when there is one). CSVs are read
with Polars' streaming engine (gzip decompressed incrementally), so memory is bounded by the batch
size whatever the file size; callers filter each batch before keeping anything.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import re
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ecgkt.cohort.report import SkipLog
from ecgkt.errors import UserError
from ecgkt.mimic.layout import MimicFolders

# Rows per streamed batch: large enough that per-batch Python work is negligible, small enough
# that a batch of labevents text stays a few tens of MB (benchmarks/build_labevents_memory.py).
DEFAULT_BATCH_ROWS = 100_000


class BuildInputError(UserError, RuntimeError):
    """Input that the builder cannot use: a missing folder/file/column or an unparseable value.

    A `UserError` (the CLI prints one red line, exit 2); still a RuntimeError for older callers.
    """


@dataclass(frozen=True)
class TableSpec:
    """One MIMIC table the builder reads, and the columns it relies on."""

    module: str  # "ecg", "hosp" or "ed": which folder option it lives under
    name: str
    columns: tuple[str, ...]


TABLES: dict[str, TableSpec] = {
    "record_list": TableSpec("ecg", "record_list", ("subject_id", "study_id", "ecg_time", "path")),
    "edstays": TableSpec("ed", "edstays", ("subject_id", "hadm_id", "stay_id", "intime", "outtime", "gender", "race")),
    "triage": TableSpec(
        "ed", "triage", ("stay_id", "temperature", "heartrate", "resprate", "o2sat", "sbp", "dbp", "acuity")
    ),
    "vitalsign": TableSpec(
        "ed",
        "vitalsign",
        ("stay_id", "charttime", "temperature", "heartrate", "resprate", "o2sat", "sbp", "dbp"),
    ),
    "ed_diagnosis": TableSpec("ed", "diagnosis", ("stay_id", "icd_code", "icd_version")),
    "patients": TableSpec("hosp", "patients", ("subject_id", "gender", "anchor_age", "anchor_year")),
    "labevents": TableSpec(
        "hosp",
        "labevents",
        ("subject_id", "itemid", "charttime", "valuenum", "ref_range_lower", "ref_range_upper"),
    ),
    "d_labitems": TableSpec("hosp", "d_labitems", ("itemid", "label")),
    "omr": TableSpec("hosp", "omr", ("subject_id", "chartdate", "result_name", "result_value")),
    "diagnoses_icd": TableSpec("hosp", "diagnoses_icd", ("hadm_id", "icd_code", "icd_version")),
    "d_icd_diagnoses": TableSpec("hosp", "d_icd_diagnoses", ("icd_code", "icd_version", "long_title")),
}

_MODULE_HINT = {
    "ecg": ("--ecg", "MIMIC-IV-ECG"),
    "hosp": ("--hosp", "MIMIC-IV hosp module"),
    "ed": ("--ed", "MIMIC-IV-ED ed module"),
}


@dataclass(frozen=True)
class SourcePaths:
    """Resolved paths of every table (plus the ECG root that record paths are relative to)."""

    ecg_root: Path
    tables: dict[str, Path]

    def __getitem__(self, key: str) -> Path:
        return self.tables[key]


def _candidates(folders: MimicFolders, spec: TableSpec) -> list[Path]:
    if spec.module == "ecg":
        root = folders.ecg
        return [root / f"{spec.name}.csv", root / f"{spec.name}.csv.gz"]
    root = folders.hosp if spec.module == "hosp" else folders.ed
    return [root / f"{spec.name}.csv.gz", root / f"{spec.name}.csv"]


def _folder_of(folders: MimicFolders, module: str) -> Path:
    return {"ecg": folders.ecg, "hosp": folders.hosp, "ed": folders.ed}[module]


def resolve_sources(folders: MimicFolders) -> SourcePaths:
    """Check the three folders and every needed file/column; raise one error listing all problems."""
    problems: list[str] = []
    for module, (option, what) in _MODULE_HINT.items():
        folder = _folder_of(folders, module)
        if not folder.is_dir():
            problems.append(f"{option} {folder}: folder does not exist (expected the {what})")
    if problems:
        raise BuildInputError("; ".join(problems))

    tables: dict[str, Path] = {}
    for key, spec in TABLES.items():
        found = next((p for p in _candidates(folders, spec) if p.is_file()), None)
        if found is None:
            option, what = _MODULE_HINT[spec.module]
            folder = _folder_of(folders, spec.module)
            expected = _candidates(folders, spec)[0].name
            hint = ""
            nested = folder / spec.module / expected
            if nested.is_file():
                hint = f" (found it in {nested.parent}: pass {option} {nested.parent})"
            problems.append(f"{option} {folder}: expected {expected} of the {what} — not found{hint}")
            continue
        missing = [c for c in spec.columns if c not in read_header(found)]
        if missing:
            problems.append(f"{found}: missing column(s) {', '.join(missing)} (has {', '.join(read_header(found))})")
            continue
        tables[key] = found
    if problems:
        raise BuildInputError("not MIMIC-shaped: " + "; ".join(problems))
    return SourcePaths(ecg_root=folders.ecg, tables=tables)


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def read_header(path: Path) -> list[str]:
    """Column names from the first line; a corrupt gzip or an empty file is a BuildInputError."""
    try:
        with _open_text(path) as handle:
            first = handle.readline()
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as error:
        raise BuildInputError(f"{path}: cannot be read ({error}); is it a truncated or corrupt file?") from error
    if not first.strip():
        raise BuildInputError(f"{path}: empty file (expected a CSV header line)")
    return [name.strip() for name in next(csv.reader([first]))]


def fingerprint(path: Path, head_bytes: int = 1 << 20) -> str:
    """size + mtime + sha256 (of the whole file when small, else of its first `head_bytes`)."""
    stat = path.stat()
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        digest.update(handle.read(head_bytes if stat.st_size > 8 * head_bytes else stat.st_size))
    scope = "head" if stat.st_size > 8 * head_bytes else "full"
    return f"size={stat.st_size};mtime_ns={stat.st_mtime_ns};sha256-{scope}={digest.hexdigest()}"


# ---- streaming CSV ------------------------------------------------------------------------------

ColumnTypes = Mapping[str, type[pl.Int64] | type[pl.String]]


CSV_BLOCK_BYTES = 1 << 20  # decompressed bytes parsed at a time by `stream_csv`


def stream_csv(
    path: Path,
    columns: ColumnTypes,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    keep: pl.Expr | None = None,
    *,
    skips: SkipLog | None = None,
) -> Iterator[pl.DataFrame]:
    """Yield batches of `columns` plus `_row` (1-based data-row number) from a CSV or CSV.GZ.

    The file is decompressed and cut into blocks of whole records here (`CSV_BLOCK_BYTES` at a
    time, cut at a line end outside quotes), and Polars parses one block at a time. Polars' own
    streaming scan (`scan_csv(...).collect_batches`) held memory growing with the file — about the
    whole decompressed text at the synthetic cohorts' sizes, up to a plateau of several hundred MiB
    on large files (benchmarks/results/scaling.md, build_labevents_memory.md) — while this keeps
    one block and one batch, whatever the file. Everything is read as text; Int64 columns are then
    cast and a value that is not an integer raises BuildInputError naming the file, row and value.
    Empty fields are null. `keep` filters each batch before it is yielded.

    A row with fewer *or* more fields than the header (a line cut short, an unquoted comma, an
    empty line) is treated one way whichever it is: with `skips` (the builder) it is dropped and
    counted as `csv.wrong_field_count` with the file and row as example — its values cannot be
    trusted, and one damaged line must not stop a build of 100 M rows — without `skips` it is a
    BuildInputError naming the row. `skips.rows_read[path]` gets the number of data rows read.
    """
    integer_columns = [name for name, dtype in columns.items() if dtype == pl.Int64]
    rows_read = 0
    try:
        for raw in _parsed_batches(path, batch_rows, skips):
            frame = raw.select("_row", *(pl.col(name).replace("", None) for name in columns))
            rows_read += raw.height
            if integer_columns:
                frame = _cast_integers(frame, integer_columns, path)
            if keep is not None:
                frame = frame.filter(keep)
            yield frame
    except (pl.exceptions.ComputeError, OSError, EOFError, zlib.error) as error:
        raise BuildInputError(
            f"{path}: cannot be read as CSV ({str(error).splitlines()[0]}); is it a truncated or corrupt file?"
        ) from error
    if skips is not None:
        skips.rows_read[str(path)] = skips.rows_read.get(str(path), 0) + rows_read


def _parsed_batches(path: Path, batch_rows: int, skips: SkipLog | None) -> Iterator[pl.DataFrame]:
    """All columns as text plus `_row`, `batch_rows` rows per frame (the last one shorter), in file order.

    EVERY column is parsed, not just the ones used: a full parse finds a row with extra fields
    (an unquoted comma shifts the values after it) or missing ones instead of accepting it.
    """
    pending: list[pl.DataFrame] = []
    pending_rows = 0
    blocks = _record_blocks(path, CSV_BLOCK_BYTES)
    header = next(blocks, b"")
    rows_before = 0  # data rows (good or not) in the blocks already parsed: `_row` counts them all
    for block in blocks:
        frame, n_rows = _parse_block(path, header, block, rows_before, skips)
        rows_before += n_rows
        pending.append(frame)
        pending_rows += frame.height
        while pending_rows >= batch_rows:
            stacked = pl.concat(pending)
            yield stacked.slice(0, batch_rows)
            pending, pending_rows = [stacked.slice(batch_rows)], pending_rows - batch_rows
    if pending_rows:
        yield pl.concat(pending)


_QUOTED = re.compile(rb'"[^"]*"')


def _parse_block(
    path: Path, header: bytes, block: bytes, rows_before: int, skips: SkipLog | None
) -> tuple[pl.DataFrame, int]:
    """One block → (its rows with the header's width, with `_row`; the number of data rows in it).

    Fast path: Polars parses the block; it raises on a row with too many fields and silently
    pads one with too few, so a short row is found by counting separators — the block's commas
    must be (rows × (columns − 1)) plus the commas inside quoted values (C-speed `bytes.count`;
    a regex collects the quoted segments only when the block has quotes). Only a block that fails either way is parsed
    again with the `csv` module (slow, rare) to find, drop and count its bad rows.
    """
    n_columns = len(next(csv.reader([header.decode("utf-8", errors="replace")]), []))
    try:
        frame = pl.read_csv(io.BytesIO(header + block), has_header=True, infer_schema=False, quote_char='"')
    except pl.exceptions.ComputeError as error:
        parsed = _parse_block_slowly(path, header, block, n_columns, rows_before, skips)
        if parsed is None:
            raise error
        return parsed
    commas = block.count(b",")
    if b'"' in block:  # commas inside quoted fields are not separators ("a ""b"", c" is 3 segments)
        commas -= b"".join(_QUOTED.findall(block)).count(b",")
    if commas != frame.height * (n_columns - 1):
        parsed = _parse_block_slowly(path, header, block, n_columns, rows_before, skips)
        if parsed is not None:
            return parsed
    numbered = frame.select(
        pl.int_range(rows_before + 1, rows_before + 1 + frame.height, dtype=pl.Int64).alias("_row"), pl.all()
    )
    return numbered, frame.height


def _parse_block_slowly(
    path: Path, header: bytes, block: bytes, n_columns: int, rows_before: int, skips: SkipLog | None
) -> tuple[pl.DataFrame, int] | None:
    """The `csv` module's reading of a block with rows of the wrong width dropped and counted
    (or, without `skips`, the first one raised); None when every row has the header's width."""
    names = next(csv.reader([header.decode("utf-8", errors="replace")]), [])
    rows = list(csv.reader(io.StringIO(block.decode("utf-8", errors="replace"), newline="")))
    bad = [(number, len(row)) for number, row in enumerate(rows, start=rows_before + 1) if len(row) != n_columns]
    if not bad:
        return None
    number, width = bad[0]
    detail = f"has {width} fields, the header has {n_columns}"
    if skips is None:
        raise BuildInputError(f"{path}: data row {number} {detail} ({', '.join(names)})")
    skips.add(
        "csv.wrong_field_count",
        len(bad),
        (f"{path.name} row {n}: {w} fields, the header has {n_columns}" for n, w in bad[:5]),
    )
    good = [(number, row) for number, row in enumerate(rows, start=rows_before + 1) if len(row) == n_columns]
    data: dict[str, list[object]] = {"_row": [n for n, _ in good]}
    for j, name in enumerate(names):
        data[name] = [row[j] if row[j] != "" else None for _, row in good]
    schema = {"_row": pl.Int64, **dict.fromkeys(names, pl.String)}
    return pl.DataFrame(data, schema=schema), len(rows)


def _record_blocks(path: Path, block_bytes: int) -> Iterator[bytes]:
    """The header line, then blocks of ~`block_bytes` decompressed bytes holding whole records."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        rest = b""
        header_done = False
        while True:
            data = handle.read(block_bytes)
            if not data:
                if rest.strip():
                    yield rest if header_done else rest.rstrip(b"\r\n") + b"\n"
                return
            buffer = rest + data
            if not header_done:
                line_end = buffer.find(b"\n")
                if line_end < 0:
                    rest = buffer
                    continue
                yield buffer[: line_end + 1]
                header_done, buffer = True, buffer[line_end + 1 :]
            cut = _last_record_end(buffer)
            if cut < 0:
                rest = buffer  # not one complete record yet: read more
                continue
            yield buffer[: cut + 1]
            rest = buffer[cut + 1 :]


def _last_record_end(buffer: bytes) -> int:
    """Index of the last newline that ends a record (an even number of quotes before it), or -1."""
    total = buffer.count(b'"')
    after = 0
    end = len(buffer)
    while True:
        newline = buffer.rfind(b"\n", 0, end)
        if newline < 0:
            return -1
        after += buffer.count(b'"', newline, end)
        if (total - after) % 2 == 0:
            return newline
        end = newline


def _cast_integers(frame: pl.DataFrame, names: list[str], path: Path) -> pl.DataFrame:
    cast = frame.with_columns(pl.col(name).str.strip_chars().cast(pl.Int64, strict=False) for name in names)
    for name in names:
        bad = frame[name].is_not_null() & cast[name].is_null()
        if bad.any():
            i = int(bad.arg_true()[0])
            raise BuildInputError(
                f"{path}: data row {frame['_row'][i]}: column {name} = {frame[name][i]!r} is not an integer"
            )
    return cast


def read_csv(
    path: Path,
    columns: ColumnTypes,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    keep: pl.Expr | None = None,
    skips: SkipLog | None = None,
) -> pl.DataFrame:
    """The whole (filtered) table as one frame, with the `_row` column of `stream_csv`."""
    parts = list(stream_csv(path, columns, batch_rows, keep, skips=skips))
    if not parts:
        return pl.DataFrame(schema={"_row": pl.Int64, **columns})
    return pl.concat(parts, how="vertical")


# ---- typed columns from text ---------------------------------------------------------------------

_DATETIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S%.f")


def parse_datetimes(column: str) -> pl.Expr:
    """MIMIC date-times ("2180-07-23 08:44:00"); anything else becomes null (counted by callers)."""
    text = pl.col(column).str.strip_chars()
    return pl.coalesce([text.str.strptime(pl.Datetime("us"), fmt, strict=False) for fmt in _DATETIME_FORMATS]).alias(
        column
    )


def parse_dates(column: str) -> pl.Expr:
    text = pl.col(column).str.strip_chars()
    return pl.coalesce(
        [
            text.str.strptime(pl.Date, "%Y-%m-%d", strict=False),
            text.str.slice(0, 10).str.strptime(pl.Date, "%Y-%m-%d", strict=False),
        ]
    ).alias(column)


def parse_floats(column: str) -> pl.Expr:
    return pl.col(column).str.strip_chars().cast(pl.Float64, strict=False).alias(column)


def row_examples(frame: pl.DataFrame, file: Path, columns: tuple[str, ...], limit: int = 5) -> list[str]:
    """'file row N: col=value' strings for the skip report."""
    examples = []
    for record in frame.head(limit).iter_rows(named=True):
        shown = ", ".join(f"{c}={record.get(c)!r}" for c in columns)
        examples.append(f"{file.name} row {record.get('_row')}: {shown}")
    return examples
