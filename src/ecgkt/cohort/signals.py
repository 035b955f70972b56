"""Parallel, resumable WFDB ingestion into the store's memory-mapped signal array.

Records are processed in fixed chunks of consecutive rows. A worker process reads a chunk with
`wfdb`, preprocesses every record with the shared inference path (`ecgkt.signals.preprocess`),
writes the rows straight into the memory-mapped `signals.npy` and flushes; only then does the
parent write the chunk's progress marker (statuses and counted events) atomically. A killed build
therefore resumes at the first chunk without a marker, and because each record's result depends
only on its file, the resumed array equals an uninterrupted one.

Per record: leads are selected by *name* (MIMIC stores aVF before aVL); any sampling rate is
resampled to 100 Hz; records shorter than 10 s are skipped (never padded), longer ones cut to
their first 10 s; NaN stretches are interpolated; µV is converted to mV. Skips and repairs are
returned as counted events with the record path as example.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ecgkt.mimic.layout import ECG_SAMPLING_RATE_HZ
from ecgkt.signals.leads import LeadError, lead_permutation
from ecgkt.signals.preprocess import PreprocessSpec, preprocess
from ecgkt.signals.quality import FLAT_PTP_MV, lead_quality
from ecgkt.signals.units import unit_to_mv
from ecgkt.signals.wfdb_fast import SimpleHeader, parse_simple_header, read_physical
from ecgkt.signals.wfdb_header import FORMAT_BYTES_PER_SAMPLE

__all__ = ["FLAT_PTP_MV", "OK", "ChunkResult", "RecordResult", "ingest_chunk", "ingest_signals", "read_record"]

OK = "ok"


@dataclass
class RecordResult:
    """Outcome of one record: the preprocessed (12, n) signal or the skip rule that removed it."""

    signal: NDArray[np.float32] | None
    status: str = OK  # OK or a `signal.*` skip key
    repairs: list[str] = field(default_factory=list)
    detail: str = ""


@dataclass(frozen=True)
class _Header:
    """What ingestion needs from a header, from the fast parser or from wfdb."""

    fs: float
    sig_len: int
    sig_names: list[str]
    units: list[str]
    data_sizes: dict[str, float] | None  # bytes each data file must hold; None if not fixed-size
    simple: SimpleHeader | None  # set when the fast reader can read the samples


def _wfdb_header(base: Path) -> _Header:
    import wfdb

    header = wfdb.rdheader(str(base))
    sizes: dict[str, float] | None = {}
    files = header.file_name or []
    spf = header.samps_per_frame or [1] * len(files)
    offsets = header.byte_offset or [None] * len(files)
    for name, fmt, frames, offset in zip(files, header.fmt or [], spf, offsets, strict=False):
        if sizes is None or str(fmt) not in FORMAT_BYTES_PER_SAMPLE:
            sizes = None
            continue
        previous = sizes.get(name, float(offset or 0))
        sizes[name] = previous + FORMAT_BYTES_PER_SAMPLE[str(fmt)] * (frames or 1) * int(header.sig_len or 0)
    return _Header(
        fs=float(header.fs or 0),
        sig_len=int(header.sig_len or 0),
        sig_names=list(header.sig_name or []),
        units=[str(u) for u in (header.units or [])],
        data_sizes=sizes,
        simple=None,
    )


def _read_header(base: Path) -> _Header:
    simple = parse_simple_header(base.parent / f"{base.name}.hea")
    if simple is None:
        return _wfdb_header(base)
    return _Header(
        fs=simple.fs,
        sig_len=simple.sig_len,
        sig_names=simple.sig_names,
        units=simple.units,
        data_sizes={simple.file_name: float(simple.data_bytes())},
        simple=simple,
    )


def _read_samples(base: Path, header: _Header, n_samples: int) -> NDArray[np.float64]:
    """(n_sig, n_samples) physical samples; NaN where the record has no sample."""
    if header.simple is not None:
        return read_physical(header.simple, base.parent / header.simple.file_name, n_samples)
    import wfdb

    record = wfdb.rdrecord(str(base), sampto=n_samples, physical=True)
    return np.asarray(record.p_signal, dtype=np.float64).T


def read_record(base: Path, spec: PreprocessSpec = PreprocessSpec()) -> RecordResult:
    """Read and preprocess one WFDB record (`base` = path without extension)."""
    header_path = base.parent / f"{base.name}.hea"
    if not header_path.is_file():
        return RecordResult(None, "signal.missing_file", detail=f"{header_path} not found")
    try:
        header = _read_header(base)
    except Exception as error:  # wfdb raises many types for a malformed header
        return RecordResult(None, "signal.unreadable", detail=f"{header_path}: {error}")
    for name, size in (header.data_sizes or {}).items():
        data_path = base.parent / name
        if not data_path.is_file():
            return RecordResult(None, "signal.missing_file", detail=f"{data_path} not found")
        if data_path.stat().st_size < size:
            return RecordResult(
                None,
                "signal.truncated_dat",
                detail=f"{data_path}: {data_path.stat().st_size} bytes, header declares {int(size)}",
            )
    try:
        order = lead_permutation(header.sig_names, source=str(header_path))
    except LeadError as error:
        return RecordResult(None, "signal.bad_leads", detail=str(error))
    fs = header.fs
    if fs <= 0:
        return RecordResult(None, "signal.unreadable", detail=f"{header_path}: sampling frequency {fs!r}")
    needed = round(spec.record_seconds * fs)
    if header.sig_len < needed:
        return RecordResult(
            None,
            "signal.too_short",
            detail=f"{header_path}: {header.sig_len} samples at {fs:g} Hz < {spec.record_seconds:g} s",
        )
    repairs = []
    if header.sig_len > needed:
        repairs.append("signal.longer_than_10s")
    try:
        raw = _read_samples(base, header, needed)[order]
    except Exception as error:
        return RecordResult(None, "signal.unreadable", detail=f"{base}: {error}")
    if raw.shape[1] != needed:
        return RecordResult(None, "signal.truncated_dat", detail=f"{base}: read {raw.shape[1]} of {needed} samples")
    # The one unit table (ecgkt.signals.units), as inference uses; unknown spellings stay as read (mV).
    factors = np.array([(unit_to_mv(header.units[i]) if i < len(header.units) else None) or 1.0 for i in order])
    if (factors != 1.0).any():
        raw *= factors[:, None]
        if (factors == 1e-3).any():
            repairs.append("signal.microvolt_units")
        if ((factors != 1.0) & (factors != 1e-3)).any():
            repairs.append("signal.units_converted")

    quality = lead_quality(raw)  # the same per-lead checks inference notes
    if quality.all_flat:
        return RecordResult(None, "signal.all_leads_flat", detail=f"{base}: all 12 leads flat")
    if quality.flat:
        repairs.append("signal.flat_lead")
    if quality.saturated:
        repairs.append("signal.saturated_lead")
    if fs != ECG_SAMPLING_RATE_HZ:
        repairs.append("signal.resampled")

    out, n_filled = preprocess(raw, fs, spec)
    if n_filled:
        repairs.append("signal.nan_interpolated")
    n = spec.num_samples
    if out.shape[1] > n:
        out = out[:, :n]
    elif out.shape[1] < n:  # rational-ratio rounding can lose a sample; repeat the edge
        out = np.pad(out, ((0, 0), (0, n - out.shape[1])), mode="edge")
    return RecordResult(np.ascontiguousarray(out, dtype=np.float32), OK, repairs)


@dataclass
class ChunkResult:
    index: int
    start: int
    statuses: list[str]
    events: dict[str, list[object]]  # key -> [count, [examples]]
    cpu_seconds: float = 0.0  # CPU time the worker spent on the chunk (speed independent of machine load)

    def to_json(self) -> dict[str, object]:
        return {
            "index": self.index,
            "start": self.start,
            "statuses": self.statuses,
            "events": self.events,
            "cpu_seconds": self.cpu_seconds,
        }


def ingest_chunk(signals_file: str, index: int, start: int, bases: Sequence[str], labels: Sequence[str]) -> ChunkResult:
    """Worker: read records `bases`, write rows start..start+len into the memmap, flush, report."""
    cpu_started = time.process_time()
    array = np.load(signals_file, mmap_mode="r+")
    statuses: list[str] = []
    events: dict[str, list[object]] = {}

    def count(key: str, example: str) -> None:
        entry = events.setdefault(key, [0, []])
        entry[0] = int(entry[0]) + 1  # type: ignore[call-overload]
        examples = entry[1]
        assert isinstance(examples, list)
        if len(examples) < 5:
            examples.append(example)

    for offset, (base, label) in enumerate(zip(bases, labels, strict=True)):
        result = read_record(Path(base))
        row = start + offset
        if result.signal is None:
            array[row] = 0.0
            statuses.append(result.status)
            count(result.status, f"{label}: {result.detail}")
        else:
            array[row] = result.signal
            statuses.append(OK)
        for repair in result.repairs:
            count(repair, label)
    array.flush()
    del array
    return ChunkResult(index, start, statuses, events, time.process_time() - cpu_started)


def marker_statuses(marker: dict[str, object]) -> list[str]:
    """The per-record statuses stored in a chunk marker."""
    statuses = marker["statuses"]
    assert isinstance(statuses, list)
    return [str(s) for s in statuses]


def chunk_marker(state_dir: Path, index: int) -> Path:
    return state_dir / f"chunk_{index:06d}.json"


def load_markers(state_dir: Path, n_chunks: int) -> dict[int, dict[str, object]]:
    """Progress markers already written (a resumed build skips these chunks)."""
    done: dict[int, dict[str, object]] = {}
    for index in range(n_chunks):
        path = chunk_marker(state_dir, index)
        if path.is_file():
            try:
                done[index] = json.loads(path.read_text())
            except json.JSONDecodeError:
                path.unlink()  # a marker is written atomically, so this is foreign damage: redo the chunk
    return done


def _write_marker(state_dir: Path, result: ChunkResult) -> None:
    path = chunk_marker(state_dir, result.index)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result.to_json()))
    os.replace(tmp, path)


def _pool_context() -> multiprocessing.context.BaseContext:
    """Workers must not be forked from the parent (Polars' thread pools do not survive fork).

    A fork server started fresh, with this module preloaded, starts workers much faster than spawn
    (no re-import of numpy/scipy per worker); spawn where fork servers do not exist (Windows).
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        return context
    return multiprocessing.get_context("spawn")


def ingest_signals(
    bases: Sequence[str],
    labels: Sequence[str],
    signals_file: Path,
    state_dir: Path,
    *,
    chunk_records: int,
    workers: int,
    on_records: Callable[[int], None] | None = None,
    on_chunk_done: Callable[[int], None] | None = None,
) -> list[dict[str, object]]:
    """Fill `signals_file` rows for every record; returns the markers of all chunks, in order.

    `bases` are absolute record paths without extension, `labels` what examples call them.
    `on_chunk_done(index)` runs after each marker is written (tests use it to simulate a kill).
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    n = len(bases)
    n_chunks = (n + chunk_records - 1) // chunk_records
    done = load_markers(state_dir, n_chunks)
    if on_records is not None and done:
        on_records(sum(len(marker_statuses(m)) for m in done.values()))
    pending = [i for i in range(n_chunks) if i not in done]

    def args(index: int) -> tuple[str, int, int, Sequence[str], Sequence[str]]:
        lo, hi = index * chunk_records, min(n, (index + 1) * chunk_records)
        return str(signals_file), index, lo, list(bases[lo:hi]), list(labels[lo:hi])

    def finish(result: ChunkResult) -> None:
        _write_marker(state_dir, result)
        done[result.index] = result.to_json()
        if on_records is not None:
            on_records(len(result.statuses))
        if on_chunk_done is not None:
            on_chunk_done(result.index)

    if workers <= 1 or len(pending) <= 1:
        for index in pending:
            finish(ingest_chunk(*args(index)))
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context()) as pool:
            queue = list(reversed(pending))
            running: set[Future[ChunkResult]] = set()
            try:
                while queue or running:
                    while queue and len(running) < 2 * workers:  # bounded look-ahead keeps order roughly sequential
                        running.add(pool.submit(ingest_chunk, *args(queue.pop())))
                    finished, running = wait(running, return_when=FIRST_COMPLETED)
                    for future in finished:
                        finish(future.result())
            except BaseException:
                for future in running:
                    future.cancel()
                raise
    return [done[i] for i in range(n_chunks)]
