"""The one way an `ecgkt` command reports an error the user can fix: a red line on stderr, exit code 2.

Commands raise a `UserError` subclass (or what `cli_error` returns, for a bad option); `cli.py` wraps
every registered command once with `user_errors_exit`, so a bad input, option or file reads the same
everywhere and never ends in a traceback.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TextIO, TypeVar

import typer

from ecgkt.errors import UserError

__all__ = ["cli_error", "show_user_warnings", "user_errors_exit"]

F = TypeVar("F", bound=Callable[..., Any])


def cli_error(message: object) -> typer.Exit:
    """Print `error: message` (red, on stderr, not wrapped) and return the exit to raise."""
    from rich.console import Console

    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


def user_errors_exit(command: F) -> F:
    """`command`, with any `UserError` it raises shown as one red line and exit code 2."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except UserError as error:
            raise cli_error(error) from None

    return run  # type: ignore[return-value]


def show_user_warnings() -> None:
    """Print ecgkt's warnings to the user (a loaded bundle's integrity, ...) as one yellow line each.

    Python's default format names the source line that warned, which means nothing to a user.
    Warnings from other packages keep the default format.
    """
    default = warnings.showwarning

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if not category.__module__.startswith("ecgkt."):
            default(message, category, filename, lineno, file, line)
            return
        from rich.console import Console

        Console(stderr=True).print(f"[bold yellow]warning:[/] {message}", highlight=False, soft_wrap=True)

    warnings.showwarning = show
