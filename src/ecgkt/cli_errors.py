"""The one way an `ecgkt` command reports an error the user can fix: a red line on stderr, exit code 2.

Every command raises what `cli_error` returns, so a bad input, option or file reads the same
everywhere and never ends in a traceback.
"""

from __future__ import annotations

import typer


def cli_error(message: object) -> typer.Exit:
    """Print `error: message` (red, on stderr, not wrapped) and return the exit to raise."""
    from rich.console import Console

    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)
