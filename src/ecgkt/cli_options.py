"""Option handling shared by several commands (`predict`, `report`), in one neutral place.

CLI modules never import each other; what two commands share lives here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ecgkt.explain.base import MethodName

from ecgkt.errors import UserError

__all__ = ["OptionError", "prediction_options", "reader_options"]


class OptionError(UserError, ValueError):
    """A command-line option with a value the command cannot use (the message names the option)."""


def prediction_options(
    units: str, missing_leads: str, sampling_rate: float | None, leads: str | None, explanation: str | None
) -> tuple[dict[str, Any], MethodName | None]:
    """Validate the options `predict` and `report` share: `read_ecg` keywords and the explanation method.

    Raises OptionError naming the option, so both commands report bad options the same way.
    """
    from ecgkt.explain.base import ExplanationError, prediction_method

    reader_kwargs = reader_options(units, missing_leads, sampling_rate, leads)
    try:
        return reader_kwargs, prediction_method(explanation)
    except ExplanationError as error:
        raise OptionError(f"--explanation: {error}") from None


def reader_options(units: str, missing_leads: str, sampling_rate: float | None, leads: str | None) -> dict[str, Any]:
    """The input-reading options as `read_ecg` keywords; OptionError names the bad option."""
    from ecgkt.signals.units import units_option

    if units_option(units) is None:
        raise OptionError(f"--units must be auto, mV or uV (µV and μV accepted), got {units!r}")
    if missing_leads not in ("error", "zero"):
        raise OptionError(f"--missing-leads must be error or zero, got {missing_leads!r}")
    options: dict[str, Any] = {"missing_leads": missing_leads, "units": units}
    if sampling_rate is not None:
        options["sampling_rate_hz"] = sampling_rate
    if leads is not None:
        options["lead_names"] = [name.strip() for name in leads.split(",") if name.strip()]
    return options
