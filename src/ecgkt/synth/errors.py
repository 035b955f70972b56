"""Errors the synthetic-cohort generator raises for bad requests.

All derive from `SynthError`, so the CLI can turn any of them into one red line and exit code 2
instead of a traceback, while library callers can still catch the specific case.
"""

from __future__ import annotations

from ecgkt.errors import UserError


class SynthError(UserError):
    """Base class: a request the generator refuses, with a message naming the problem."""


class InvalidRequestError(SynthError, ValueError):
    """A patient count, seed or worker count outside what the generator accepts (nonsense sizes)."""


class OutputExistsError(SynthError, FileExistsError):
    """The output folder exists and is not empty, and overwriting was not requested."""


class OutputNotWritableError(SynthError, PermissionError):
    """The output folder (or its parent) cannot be created or written."""
