"""Out-of-core helpers of the cohort build: candidate chunks and chunk-partitioned Parquet spills.

The build's per-record memory used to come from whole-cohort frames (labevents rows near the
stays, vitals, the 466-column feature table). Here the candidates are cut into *chunks* — runs of
consecutive candidates (in `_cand` order, so stacking the chunks' outputs reproduces the whole
cohort's order) spanning at most N distinct stays — and rows attached to a stay are spilled to
Parquet parts filed under every chunk that stay belongs to. A later step then reads one chunk's
rows at a time, so what stays in memory is one chunk plus a bounded buffer, whatever the cohort.

Every part is written to a temporary name and renamed, so a killed build never leaves a
half-written part; a folder of parts is only trusted by the caller once its stage marker exists.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import polars as pl
from numpy.typing import NDArray

from ecgkt.atomic_files import replacing
from ecgkt.cohort.write_errors import naming

CHUNK_COLUMN = "_chunk"


def candidate_chunks(stay_ids: pl.Series, max_stays: int) -> NDArray[np.int64]:
    """Chunk index of each candidate: consecutive candidates, at most `max_stays` distinct stays per chunk.

    A stay whose ECGs are not contiguous may fall into several chunks; it is then summarised once
    per chunk (same rows, same result), which keeps every chunk's output in candidate order.
    """
    if max_stays <= 0:
        raise ValueError(f"max_stays must be positive, got {max_stays}")
    chunks = np.empty(stay_ids.len(), dtype=np.int64)
    chunk, seen = 0, set[int]()
    for i, stay in enumerate(stay_ids.to_list()):
        if stay not in seen and len(seen) == max_stays:
            chunk, seen = chunk + 1, set[int]()
        seen.add(stay)
        chunks[i] = chunk
    return chunks


def chunk_bounds(chunks: NDArray[np.int64]) -> list[tuple[int, int]]:
    """(start, stop) candidate range of each chunk, in chunk order."""
    if chunks.size == 0:
        return []
    starts = np.flatnonzero(np.diff(chunks, prepend=-1))
    stops = np.append(starts[1:], chunks.size)
    return [(int(a), int(b)) for a, b in zip(starts, stops, strict=True)]


def write_parquet_atomically(frame: pl.DataFrame, path: Path) -> None:
    """Temp file then rename: a reader never sees a half-written part. A failed write (a full
    disk) removes the temporary file and raises an OSError naming `path`."""
    with replacing(path, suffix=".tmp") as temporary, naming(path):
        frame.write_parquet(temporary)


class ChunkSpill:
    """Rows keyed by stay_id, buffered in memory and spilled as Parquet parts per chunk.

    `stay_chunks` (stay_id, _chunk) says which chunk(s) each stay belongs to; a row is filed under
    each of them. The buffer is written out whenever it holds `max_rows` rows or more, so memory is
    bounded by the buffer, not by the cohort. `read(chunk)` returns that chunk's rows (all parts).
    """

    def __init__(self, folder: Path, stay_chunks: pl.DataFrame, schema: dict[str, pl.DataType], max_rows: int) -> None:
        if max_rows <= 0:
            raise ValueError(f"max_rows must be positive, got {max_rows}")
        if folder.exists():
            shutil.rmtree(folder)  # parts of an interrupted earlier pass: never mixed with new ones
        folder.mkdir(parents=True)
        self.folder = folder
        self.schema = schema
        self.max_rows = max_rows
        self._keys = stay_chunks.select(pl.col("stay_id"), pl.col(CHUNK_COLUMN).cast(pl.Int64))
        self._buffer: list[pl.DataFrame] = []
        self._buffered = 0
        self._parts = 0
        self.rows_added = 0

    def add(self, rows: pl.DataFrame) -> None:
        """File `rows` (columns of `schema`, incl. stay_id) under their stays' chunks."""
        for lo in range(0, rows.height, self.max_rows):  # a large input is taken a buffer at a time
            piece = rows.slice(lo, self.max_rows)
            self.rows_added += piece.height
            tagged = piece.select(list(self.schema)).join(self._keys, on="stay_id")
            self._buffer.append(tagged)
            self._buffered += tagged.height
            if self._buffered >= self.max_rows:
                self.flush()

    def flush(self) -> None:
        """Write the buffer as one part per chunk it touches, then empty it."""
        if not self._buffer:
            return
        frame = pl.concat(self._buffer)
        self._buffer, self._buffered = [], 0
        for (chunk,), part in frame.partition_by(CHUNK_COLUMN, as_dict=True).items():
            path = self.folder / f"chunk_{int(str(chunk)):06d}" / f"part_{self._parts:06d}.parquet"
            write_parquet_atomically(part.drop(CHUNK_COLUMN), path)
        self._parts += 1

    def read(self, chunk: int) -> pl.DataFrame:
        """All rows filed under `chunk` (an empty frame of `schema` if none), in spill order."""
        parts = sorted((self.folder / f"chunk_{chunk:06d}").glob("part_*.parquet"))
        if not parts:
            return pl.DataFrame(schema=self.schema)
        return pl.concat([pl.read_parquet(p) for p in parts])
