"""The one WFDB header tokeniser, with three policies on top of it.

The header format (physionet.org/physiotools/wag/header-5.htm) is tokenised once, here, into raw
field strings: a record line `name[/n_seg] n_sig [fs[/counter[(base)]] [sig_len [time [date]]]]` and
one signal line per signal `file fmt[xspf][:skew][+offset] [gain[(baseline)][/units] [res [zero [init
[checksum [block [description]]]]]]]`. What each caller accepts is a *policy* over those tokens:

- `lenient` (cohort builder): the simple MIMIC shape (one format-16 file) with optional trailing
  fields; anything else returns None and the builder uses `wfdb`.
- `strict` (inference fast path): only headers `wfdb` reads identically (every field present,
  plain ASCII, valid base time/date); anything else returns None and `wfdb` reads (and words the
  errors for) the file.
- `untrusted` (service uploads): raises `EcgInputError` (kind `invalid_wfdb_header`) for a header
  that is not short text, names more than one or an unsafe signal file, mixes storage formats, ...;
  otherwise returns what the upload checks need (record and signal-file names, sizes).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from ecgkt.signals.errors import EcgInputError
from ecgkt.signals.limits import MAX_SIGNALS

__all__ = [
    "DEFAULT_GAIN",
    "FORMAT_BYTES_PER_SAMPLE",
    "MAX_HEADER_BYTES",
    "HeaderTokens",
    "RecordLine",
    "SignalLine",
    "UntrustedHeader",
    "WfdbFields",
    "header_text",
    "lenient",
    "looks_like_header",
    "strict",
    "tokenise_header",
    "untrusted",
]

# Bytes per sample of the WFDB storage formats whose data size follows from the header (the builder
# and the upload checks compare it with the .dat size before reading).
FORMAT_BYTES_PER_SAMPLE: dict[str, float] = {
    "8": 1,
    "16": 2,
    "24": 3,
    "32": 4,
    "61": 2,
    "80": 1,
    "160": 2,
    "212": 1.5,
    "310": 4 / 3,
    "311": 4 / 3,
}
DEFAULT_GAIN = 200.0  # WFDB: a missing or zero ADC gain means 200 adu per physical unit
MAX_HEADER_BYTES = 64 * 1024
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_FORMAT = re.compile(r"(?P<fmt>\d+)(?:x(?P<spf>\d+))?(?::(?P<skew>\d+))?(?:\+(?P<offset>\d+))?")
_ADC = re.compile(r"(?P<gain>[^(/]*)(?:\((?P<baseline>[^)]*)\))?(?:/(?P<units>.*))?")


@dataclass(frozen=True)
class RecordLine:
    tokens: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.tokens[0]

    def get(self, index: int) -> str | None:
        return self.tokens[index] if index < len(self.tokens) else None


@dataclass(frozen=True)
class SignalLine:
    """Raw fields of one signal line; `fields[8]` (if any) is the description, spaces kept."""

    fields: tuple[str, ...]

    def get(self, index: int) -> str | None:
        return self.fields[index] if index < len(self.fields) else None

    @property
    def format_parts(self) -> re.Match[str] | None:
        return _FORMAT.fullmatch(self.fields[1]) if len(self.fields) > 1 else None

    @property
    def adc_parts(self) -> re.Match[str] | None:
        return _ADC.fullmatch(self.fields[2]) if len(self.fields) > 2 else None


@dataclass(frozen=True)
class HeaderTokens:
    """Non-empty, non-comment lines: the record line, then every further line split as a signal line."""

    record: RecordLine
    lines: tuple[str, ...]
    signals: tuple[SignalLine, ...]


def tokenise_header(text: str) -> HeaderTokens | None:
    """Split a header's text into fields; None when it has no record line at all."""
    lines = tuple(line.strip() for line in text.splitlines())
    lines = tuple(line for line in lines if line and not line.startswith("#"))
    if not lines:
        return None
    record = RecordLine(tuple(lines[0].split()))
    signals = tuple(SignalLine(tuple(line.split(maxsplit=8))) for line in lines[1:])
    return HeaderTokens(record, lines, signals)


@dataclass(frozen=True)
class WfdbFields:
    """What the fast readers need from a single-file, format-16 header."""

    fs: float
    sig_len: int
    file_name: str
    sig_names: list[str]
    units: list[str]
    gains: list[float]
    baselines: list[float]


def _match(pattern: str, value: str | None) -> bool:
    return value is not None and re.fullmatch(pattern, value) is not None


# ---- lenient (builder) ------------------------------------------------------------------------

_NUMBER = r"[0-9.eE+-]+"


def lenient(tokens: HeaderTokens | None) -> WfdbFields | None:
    """The simple MIMIC shape with optional trailing signal fields, else None (use wfdb)."""
    if tokens is None:
        return None
    record = tokens.record
    if not (
        len(record.tokens) >= 4
        and _match(r"[^\s/]+", record.name)
        and _match(r"\d+", record.get(1))
        and _match(_NUMBER, record.get(2))
        and _match(r"\d+", record.get(3))
    ):
        return None
    n_sig = int(record.tokens[1])
    if n_sig == 0 or len(tokens.signals) < n_sig:
        return None
    files, names, units, gains, baselines = set(), [], [], [], []
    optional = (r"\d+", r"[+-]?\d+", r"[+-]?\d+", r"[+-]?\d+", r"\d+")
    for index, line in enumerate(tokens.signals[:n_sig]):
        adc = line.adc_parts
        if line.get(1) != "16" or adc is None or not _match(_NUMBER, adc["gain"]):
            return None
        if adc["baseline"] is not None and not _match(r"[+-]?\d+", adc["baseline"]):
            return None
        if adc["units"] is not None and not _match(r"\S+", adc["units"]):
            return None
        if any(line.get(3 + k) is not None and not _match(p, line.get(3 + k)) for k, p in enumerate(optional)):
            return None
        try:
            gain = float(adc["gain"])
        except ValueError:
            return None
        files.add(line.fields[0])
        gains.append(gain if gain != 0 else DEFAULT_GAIN)
        zero = line.get(4)
        baselines.append(float(adc["baseline"]) if adc["baseline"] is not None else float(int(zero or 0)))
        units.append(adc["units"] or "mV")
        description = line.get(8)
        names.append(description.strip() if description else f"ch{index + 1}")
    if len(files) != 1:
        return None
    try:
        fs = float(record.tokens[2])
    except ValueError:
        return None
    return WfdbFields(fs, int(record.tokens[3]), files.pop(), names, units, gains, baselines)


# ---- strict (inference fast path) ---------------------------------------------------------------

# Only spaces and tabs separate fields, and only printable ASCII (plus tab) appears: anything else
# might be split differently by wfdb's regexes, so it goes to wfdb.
_PLAIN_LINE = re.compile(r"[\x20-\x7e\t]*")


def strict(text: str) -> WfdbFields | None:
    """The header when wfdb would read it identically (every field present, ASCII only), else None."""
    tokens = tokenise_header(text)
    if tokens is None or not all(_PLAIN_LINE.fullmatch(line) for line in tokens.lines):
        return None
    record = tokens.record.tokens
    if not (
        4 <= len(record) <= 6
        and _match(r"[-\w]+", record[0])
        and _match(r"\d+", record[1])
        and _match(r"\d+(?:\.\d+)?", record[2])
        and _match(r"\d+", record[3])
    ):
        return None
    time = record[4] if len(record) > 4 else None
    date = record[5] if len(record) > 5 else None
    if time is not None and not _match(r"\d{1,2}:\d{1,2}:\d{1,2}(?:\.\d{1,6})?", time):
        return None
    if date is not None and not _match(r"\d{1,2}/\d{1,2}/\d{4}", date):
        return None
    if not _valid_base_time(time, date):
        return None
    n_sig, sig_len, fs = int(record[1]), int(record[3]), float(record[2])
    if n_sig == 0 or sig_len == 0 or fs <= 0 or len(tokens.signals) != n_sig:
        return None
    names, units, gains, baselines, files = [], [], [], [], set()
    for line in tokens.signals:
        adc = line.adc_parts
        if not (
            len(line.fields) == 9
            and _match(r"[-\w]+(?:\.\w+)?", line.fields[0])
            and line.fields[1] == "16"
            and adc is not None
            and _match(r"\d+(?:\.\d+)?", adc["gain"])
            and (adc["baseline"] is None or _match(r"-?\d+", adc["baseline"]))
            and (adc["units"] is None or _match(r"[\w^\-?%/]+", adc["units"]))
            and _match(r"\d+", line.fields[3])
            and all(_match(r"-?\d+", line.fields[k]) for k in (4, 5, 6))
            and line.fields[7] == "0"
            and _match(r"[^\t\n\r\f\v]+", line.fields[8])
        ):
            return None
        files.add(line.fields[0])
        gains.append(float(adc["gain"]))
        baseline = adc["baseline"] if adc["baseline"] is not None else line.fields[4]
        baselines.append(float(baseline))
        units.append(adc["units"] or "mV")
        names.append(line.fields[8])
    if len(files) != 1 or min(gains) <= 0:
        return None
    return WfdbFields(fs, sig_len, files.pop(), names, units, gains, baselines)


def _valid_base_time(time: str | None, date: str | None) -> bool:
    """wfdb parses the record line's base time and date and fails on invalid ones: so do we."""
    try:
        if time is not None:
            dt.datetime.strptime(time, "%H:%M:%S.%f" if "." in time else "%H:%M:%S")
        if date is not None:
            dt.datetime.strptime(date, "%d/%m/%Y")
    except ValueError:
        return False
    return True


# ---- untrusted (service uploads) ------------------------------------------------------------------


@dataclass(frozen=True)
class UntrustedHeader:
    """What the upload checks need before `wfdb` may see the files."""

    record_name: str
    n_signals: int
    n_samples: int | None
    signal_file: str
    storage_format: str
    byte_offset: int


def header_text(data: bytes, source: str) -> str:
    """An uploaded header's bytes as text: short, no NUL bytes, UTF-8."""
    if len(data) > MAX_HEADER_BYTES:
        raise _header_error(source, "a WFDB header is text of at most 64 KiB")
    if b"\x00" in data:
        raise _header_error(source, "header contains binary data (NUL bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise _header_error(source, "header is not UTF-8/ASCII text") from None


def looks_like_header(data: bytes) -> bool:
    """Whether bytes start like a WFDB header (a record line we would accept)."""
    try:
        _untrusted_record(tokenise_header(header_text(data, "header")), "header")
    except EcgInputError:
        return False
    return True


def _header_error(source: str, problem: str) -> EcgInputError:
    return EcgInputError(source, problem, kind="invalid_wfdb_header")


def _untrusted_record(tokens: HeaderTokens | None, source: str) -> tuple[str, int, int | None]:
    if tokens is None:
        raise _header_error(source, "header has no record line")
    record = tokens.record.tokens
    if len(record) < 2 or not record[1].isdigit():
        raise _header_error(source, "first header line must be 'RECORD NSIG [FS [NSAMP ...]]'")
    name = record[0]
    if "/" in name:
        raise _header_error(source, "multi-segment WFDB records are not supported")
    if not SAFE_NAME.match(name):
        raise _header_error(source, f"record name {name[:40]!r} is not a plain name")
    n_samples = int(record[3]) if len(record) > 3 and record[3].isdigit() else None
    return name, int(record[1]), n_samples


def untrusted(data: bytes, source: str) -> UntrustedHeader:
    """Sanity of an uploaded header before wfdb sees it: record line, signal lines, one safe signal file."""
    tokens = tokenise_header(header_text(data, source))
    name, n_signals, n_samples = _untrusted_record(tokens, source)
    assert tokens is not None
    if not 1 <= n_signals <= MAX_SIGNALS:
        raise _header_error(source, f"declares {n_signals} signals (1 to {MAX_SIGNALS} allowed)")
    signal_lines = tokens.signals[:n_signals]
    if len(signal_lines) != n_signals:
        raise _header_error(source, f"declares {n_signals} signals but has {len(signal_lines)} signal lines")
    files, formats, offsets = set(), set(), set()
    for line in signal_lines:
        if len(line.fields) < 2:
            raise _header_error(source, f"signal line {line.fields[0][:40]!r} lacks a format")
        files.add(line.fields[0])
        parts = line.format_parts
        if parts is None:
            raise _header_error(source, f"unreadable signal format {line.fields[1][:20]!r}")
        formats.add(parts["fmt"])
        offsets.add(int(parts["offset"]) if parts["offset"] else 0)
    if len(files) != 1:
        raise _header_error(source, f"signals are spread over {len(files)} files; one signal file is supported")
    signal_file = files.pop()
    if not SAFE_NAME.match(signal_file) or ".." in signal_file:
        raise _header_error(source, f"signal file name {signal_file[:40]!r} is not a plain file name")
    if len(formats) != 1:
        raise _header_error(source, f"mixed storage formats {sorted(formats)} are not supported")
    return UntrustedHeader(name, n_signals, n_samples, signal_file, formats.pop(), max(offsets))
