"""The JSON ECG document, read the same way by `ecgkt predict file.json` and by the service.

`{"signal": [[...], ...], "sampling_rate_hz": 500, "leads": [...], "units": "mV", "missing_leads": "zero"}`:
`signal` is leads × samples (or samples × leads) in physical units; `null` (or a non-standard `NaN`)
marks a missing sample. Parsing is total — every body gets a value or an `EcgInputError` (kind
`invalid_json`), never another exception:
- size: at most `MAX_JSON_VALUES` numbers (counted from the separators before parsing, so the
  parsed lists stay bounded in memory);
- depth: nesting the schema cannot hold is refused (Python's parser would raise RecursionError);
- digits: number literals longer than `MAX_JSON_DIGITS` characters are refused before conversion
  (a 5,000-digit integer makes `int()` raise ValueError, and no physical value needs it).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ecgkt.signals.assembly import MissingLeads, Overrides, RawEcg, make_overrides
from ecgkt.signals.errors import EcgInputError
from ecgkt.signals.limits import MAX_JSON_DIGITS, MAX_SIGNALS
from ecgkt.signals.units import Units

__all__ = [
    "MAX_JSON_BYTES",
    "MAX_JSON_VALUES",
    "EcgJsonPayload",
    "first_validation_error",
    "parse_json_ecg",
    "read_json_ecg",
]

# 12 leads × 5 min at 500 Hz = 1.8 M values; a JSON body is for a resting ECG, not a Holter file.
MAX_JSON_VALUES = 2_000_000
MAX_JSON_BYTES = 64 * 1024 * 1024
_MAX_DEPTH = 8


class EcgJsonPayload(BaseModel):
    """A JSON ECG: `signal` is leads × samples (or samples × leads) in physical units.

    `null` (or a non-standard `NaN`) marks a missing sample; it is interpolated like NaN in files.
    `sampling_rate_hz` must be a JSON number: a string such as "500" is refused, not guessed.
    """

    model_config = ConfigDict(extra="forbid")

    signal: list[list[float | None]] = Field(min_length=1, max_length=100_000)
    sampling_rate_hz: float = Field(strict=True, gt=0, le=100_000, allow_inf_nan=False)
    leads: list[str] | None = Field(None, min_length=1, max_length=MAX_SIGNALS)
    units: Units = "auto"
    missing_leads: MissingLeads = "error"

    @model_validator(mode="after")
    def _rectangular(self) -> EcgJsonPayload:
        lengths = {len(row) for row in self.signal}
        if len(lengths) != 1:
            raise ValueError(f"signal rows must all have the same length, got lengths {sorted(lengths)[:5]}")
        if 0 in lengths:
            raise ValueError("signal rows are empty")
        return self


def first_validation_error(error: ValidationError) -> str:
    """`location: message` of a pydantic error's first entry (the one formatter of the input path)."""
    errors = error.errors()
    if not errors:
        return "invalid document"
    first = errors[0]
    location = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{location}: {first['msg']}"


def _bounded_number(kind: type) -> Any:
    def convert(text: str) -> Any:
        if len(text) > MAX_JSON_DIGITS:
            raise ValueError(f"number literal of {len(text)} characters (at most {MAX_JSON_DIGITS})")
        return kind(text)

    return convert


def _depth_ok(data: bytes) -> bool:
    """Cheap upper bound on nesting: more consecutive '[' / '{' than the schema needs is refused."""
    run = 0
    for byte in data[:4096]:
        if byte in b"[{":
            run += 1
            if run > _MAX_DEPTH:
                return False
        elif byte not in b" \t\r\n":
            run = 0
    return True


def _bad(source: str, problem: str) -> EcgInputError:
    return EcgInputError(source, problem, "invalid_json")


def parse_json_ecg(data: bytes, source: str) -> tuple[RawEcg, Overrides]:
    """A JSON ECG document's bytes → (what it holds, the options it carries)."""
    if not data.strip():
        raise _bad(source, "document is empty; expected a JSON ECG document")
    if len(data) > MAX_JSON_BYTES:
        raise _bad(source, f"document is larger than {MAX_JSON_BYTES // 2**20} MiB")
    if data.count(b",") + 1 > MAX_JSON_VALUES:
        raise _bad(source, f"document holds more than {MAX_JSON_VALUES} values; send a file (.npy, WFDB) instead")
    if not _depth_ok(data):
        raise _bad(source, f"JSON nested deeper than {_MAX_DEPTH} levels; expected signal as a list of lists")
    try:
        document = json.loads(data, parse_int=_bounded_number(int), parse_float=_bounded_number(float))
    except RecursionError:
        raise _bad(source, "JSON nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as error:
        raise _bad(source, f"not valid JSON ({str(error)[:200]})") from None
    if not isinstance(document, dict):
        raise _bad(source, "expected a JSON object with 'signal' and 'sampling_rate_hz'")
    try:
        payload = EcgJsonPayload.model_validate(document)
    except ValidationError as error:
        raise _bad(source, first_validation_error(error)) from None
    except RecursionError:
        raise _bad(source, "JSON nested too deeply") from None
    try:
        matrix = np.array(
            [[math.nan if value is None else value for value in row] for row in payload.signal], dtype=np.float64
        )
    except (OverflowError, ValueError) as error:
        raise _bad(source, f"signal is not numeric ({error})") from None
    raw = RawEcg(source=source, signal=matrix, sampling_rate_hz=payload.sampling_rate_hz, lead_names=None)
    overrides = make_overrides(None, payload.leads, payload.units, payload.missing_leads)
    return raw, overrides


def read_json_ecg(path: Path, source: str) -> tuple[RawEcg, Overrides]:
    """A `.json` ECG document on disk (the CLI's entry to the same reader)."""
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise _bad(source, f"document is larger than {MAX_JSON_BYTES // 2**20} MiB")
        data = path.read_bytes()
    except OSError as error:
        raise EcgInputError(source, f"unreadable file ({error})") from None
    return parse_json_ecg(data, source)
