"""CLI: `ecgkt model-card BUNDLE [--out card.md|card.html]` — the bundle's model card."""

from __future__ import annotations

from pathlib import Path

import typer

from ecgkt.cli_errors import cli_error


def model_card(
    bundle: Path = typer.Argument(..., help="Model bundle folder.", show_default=False),
    out: Path | None = typer.Option(None, "--out", "-o", help="card.md or card.html (default: Markdown to stdout)."),
) -> None:
    """Write the model card (training data, cohort, Table 1, calibration, intended use, limits)."""
    from ecgkt.atomic_files import write_text_atomically
    from ecgkt.bundle import BundleError
    from ecgkt.modelcard.card import model_card_html, model_card_markdown

    as_html = out is not None and out.suffix.lower() in (".html", ".htm")
    if out is not None and not as_html and out.suffix.lower() not in (".md", ".markdown"):
        raise cli_error(f"{out}: --out must end in .md or .html")
    try:
        text = model_card_html(bundle) if as_html else model_card_markdown(bundle)
    except BundleError as error:
        raise cli_error(error) from None
    if out is None:
        typer.echo(text)
    else:
        write_text_atomically(out, text)
        typer.echo(f"wrote {out}")


def register(app: typer.Typer) -> None:
    app.command("model-card")(model_card)
