"""The `ecgkt` command line: one subcommand per pipeline step, each defined by its own package.

Each package's `commands` module exposes `register(app)` and keeps heavy imports (torch, polars)
inside the command bodies, so `ecgkt --help` stays fast. This file holds no logic of its own.
"""

from __future__ import annotations

import importlib

import typer

from ecgkt import __version__
from ecgkt.cli_errors import show_user_warnings, user_errors_exit
from ecgkt.runtime import tune_allocator

COMMAND_MODULES: tuple[str, ...] = (
    "ecgkt.synth.commands",
    "ecgkt.cohort.commands",
    "ecgkt.train.commands",
    "ecgkt.predict.commands",
    "ecgkt.explain.commands",
    "ecgkt.report.commands",
    "ecgkt.serve.commands",
    "ecgkt.export.commands",
    "ecgkt.bundle_commands",
    "ecgkt.convert.commands",
    "ecgkt.modelcard.commands",
    "ecgkt.demo",
)

app = typer.Typer(
    name="ecgkt",
    help=(
        "ECG Knowledge Transfer: synthetic MIMIC cohort → cohort store → three-stage training"
        " → explained predictions."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"ecgkt {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version."
    ),
) -> None:
    """ECG Knowledge Transfer."""


for _module_name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(_module_name)
    except ModuleNotFoundError as _error:
        if _error.name != _module_name:  # a real missing dependency inside the module: surface it
            raise
        continue
    _module.register(app)

show_user_warnings()

# The one place user errors become a red line and exit 2: no command catches its own list of errors.
for _command in app.registered_commands:
    if _command.callback is not None:
        _command.callback = user_errors_exit(_command.callback)


def main() -> None:
    # Every command is a long-running compute job (training, building, serving): keep activation-sized
    # allocations in the heap (ecgkt.runtime; ECGKT_MALLOC_TUNING=0 opts out).
    tune_allocator()
    app()


if __name__ == "__main__":
    main()
