"""The one base of every error a user can fix (a bad file, option, bundle or store).

Each package raises its own subclass (so a caller can catch `BundleError` alone), and the CLI catches
`UserError` once and prints it as one red line with exit code 2 (`ecgkt.cli_errors`); the service maps
it to a 4xx with the standard error body. Anything else is a bug and may show a traceback.
"""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """A problem with what the user handed ecgkt; the message names the file or option and the problem."""
