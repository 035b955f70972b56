"""The one table of physical-unit spellings, shared by every reader, the CLI, the service and the builder.

Two vocabularies live here and nowhere else:
- *declared* units (WFDB header, DICOM UCUM code, sidecar, `.npz`): `unit_to_mv` gives the factor
  to mV, so the cohort builder and inference convert exactly the same units the same way;
- the *option* a user passes (`--units`, form field, JSON `units`, sidecar `units`): `units_option`
  maps every accepted spelling (ASCII "uV", micro sign "µV" U+00B5, Greek mu "μV" U+03BC) to
  `"auto" | "mV" | "uV"`.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["UNIT_OPTIONS", "Units", "unit_display", "unit_to_mv", "units_option"]

Units = Literal["auto", "mV", "uV"]
UNIT_OPTIONS: tuple[str, ...] = ("auto", "mV", "uV")

# Factor to mV per normalised (stripped, lower-case) spelling.
_TO_MILLIVOLT: dict[str, float] = {
    "mv": 1.0,
    "millivolt": 1.0,
    "uv": 1e-3,
    "µv": 1e-3,  # U+00B5 micro sign
    "μv": 1e-3,  # U+03BC Greek small mu
    "microvolt": 1e-3,
    "v": 1e3,
    "volt": 1e3,
    "nv": 1e-6,
}
_DISPLAY: dict[float, str] = {1.0: "mV", 1e-3: "µV", 1e3: "V", 1e-6: "nV"}


def _key(unit: str | None) -> str:
    return (unit or "").strip().lower()


def unit_to_mv(unit: str | None) -> float | None:
    """Factor that converts a declared unit to mV, or None when the spelling is not a voltage we know."""
    return _TO_MILLIVOLT.get(_key(unit))


def unit_display(unit: str | None) -> str:
    """The conventional spelling of a declared unit (for notes); unknown ones as given."""
    factor = unit_to_mv(unit)
    return _DISPLAY[factor] if factor is not None else str(unit)


def units_option(value: object) -> Units | None:
    """A user's units option → "auto" | "mV" | "uV", or None when it is not one of them."""
    if not isinstance(value, str):
        return None
    key = _key(value)
    if key == "auto":
        return "auto"
    factor = _TO_MILLIVOLT.get(key)
    if factor == 1.0:
        return "mV"
    if factor == 1e-3:
        return "uV"
    return None
