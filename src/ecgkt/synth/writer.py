"""Writing tables the way MIMIC ships them: `.csv.gz` for hosp/ed, plain `.csv` for MIMIC-IV-ECG.

Times are written as `YYYY-MM-DD HH:MM:SS`, dates as `YYYY-MM-DD`, nulls as empty fields. The gzip
header carries no timestamp or file name, so identical data gives byte-identical files (the
determinism test hashes them).
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import IO, cast

import polars as pl

DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
DATE_FORMAT = "%Y-%m-%d"
GZIP_LEVEL = 4  # labevents dominates the write time; level 4 is within a few % of level 9 in size


def write_table(frame: pl.DataFrame, path: Path) -> None:
    """Write `frame` to `path`, gzip-compressed when the name ends in `.gz`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                                     compresslevel=GZIP_LEVEL) as compressed:
            frame.write_csv(cast(IO[bytes], compressed), datetime_format=DATETIME_FORMAT, date_format=DATE_FORMAT,
                            null_value="")
    else:
        frame.write_csv(path, datetime_format=DATETIME_FORMAT, date_format=DATE_FORMAT, null_value="")
