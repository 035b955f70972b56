"""The one sidecar-JSON reader: `{"sampling_rate_hz": 500, "leads": [...], "units": "mV"}` beside a `.npy`.

Used by `ecgkt predict` (a file `<name>.npy.json` or `<stem>.json` next to the array) and by the
service (a second uploaded file): same keys, same checks, same wording. Unknown keys are ignored
with a note (a sidecar may carry the exporter's own metadata); a wrong type is an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecgkt.signals.errors import EcgInputError
from ecgkt.signals.limits import MAX_SIGNALS
from ecgkt.signals.units import unit_to_mv

__all__ = ["SIDECAR_KEYS", "Sidecar", "find_sidecar", "parse_sidecar", "read_sidecar"]

SIDECAR_KEYS = ("sampling_rate_hz", "leads", "units")


@dataclass(frozen=True)
class Sidecar:
    """What a sidecar says; None where it says nothing. `units` is a declared unit (mV, uV, µV, V...)."""

    sampling_rate_hz: float | None = None
    leads: tuple[str, ...] | None = None
    units: str | None = None
    notes: tuple[str, ...] = ()


def find_sidecar(path: Path) -> Path | None:
    """`<name>.npy.json`, else `<stem>.json`, beside the array."""
    for candidate in (path.with_name(path.name + ".json"), path.with_suffix(".json")):
        if candidate.is_file():
            return candidate
    return None


def read_sidecar(path: Path, source: str) -> Sidecar:
    """The sidecar of an array file, or an empty `Sidecar` when there is none."""
    candidate = find_sidecar(path)
    if candidate is None:
        return Sidecar()
    try:
        data = candidate.read_bytes()
    except OSError as error:
        raise EcgInputError(source, f"unreadable sidecar {candidate.name} ({error})", "invalid_json") from None
    return parse_sidecar(data, source, candidate.name)


def parse_sidecar(data: bytes, source: str, name: str) -> Sidecar:
    """Check a sidecar's content; errors name the array (`source`) and the sidecar file (`name`)."""
    try:
        content: Any = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise EcgInputError(source, f"unreadable sidecar {name} ({error})", "invalid_json") from None
    if not isinstance(content, dict):
        raise EcgInputError(source, f"sidecar {name} must hold a JSON object", "invalid_json")
    rate = content.get("sampling_rate_hz")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int | float)):
        raise EcgInputError(
            source, f"sidecar sampling_rate_hz must be a number, got {str(rate)[:40]!r}", "invalid_json"
        )
    leads = content.get("leads")
    if leads is not None and (
        not isinstance(leads, list) or not all(isinstance(v, str) for v in leads) or not 1 <= len(leads) <= MAX_SIGNALS
    ):
        raise EcgInputError(
            source, f"sidecar {name}: leads must be a list of 1 to {MAX_SIGNALS} lead names", "invalid_json"
        )
    units = content.get("units")
    if units is not None and (
        not isinstance(units, str) or (units.strip().lower() != "auto" and unit_to_mv(units) is None)
    ):
        raise EcgInputError(source, f"sidecar {name}: units must be mV or uV, got {str(units)[:20]!r}", "invalid_json")
    unknown = sorted(set(content) - set(SIDECAR_KEYS))
    notes = (f"ignored unknown sidecar key(s) {', '.join(k[:40] for k in unknown[:5])}",) if unknown else ()
    return Sidecar(
        sampling_rate_hz=None if rate is None else float(rate),
        leads=None if leads is None else tuple(leads),
        units=None if units is None or units.strip().lower() == "auto" else units,
        notes=notes,
    )
