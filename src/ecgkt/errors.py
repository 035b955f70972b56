"""The one base of every error a user can fix (a bad file, option, bundle or store).

Each package raises its own subclass (so a caller can catch `BundleError` alone), and the CLI catches
`UserError` once and prints it as one red line with exit code 2 (`ecgkt.cli_errors`); the service maps
it to a 4xx with the standard error body. Anything else is a bug and may show a traceback.

`describe_validation_error` is the one wording of a pydantic validation failure, so a bad config key,
bundle field, setting or request field reads the same everywhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = ["UserError", "describe_validation_error"]


class UserError(Exception):
    """A problem with what the user handed ecgkt; the message names the file or option and the problem."""


def describe_validation_error(
    error: ValidationError, *, first_only: bool = False, top_level: str = "(top level)"
) -> str:
    """`'field.sub': message` for each problem ("unknown key 'x'" for a forbidden extra), joined by "; ".

    `first_only` keeps the first problem (one-line messages for a single option or request field).
    """
    problems: list[str] = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or top_level
        if item["type"] == "extra_forbidden":
            problems.append(f"unknown key '{where}'")
        else:
            problems.append(f"'{where}': {item['msg']}")
        if first_only:
            break
    return "; ".join(problems) or "invalid value"
