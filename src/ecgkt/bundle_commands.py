"""CLI: `ecgkt bundle-hash BUNDLE` — verify a model bundle and print the digest a deployer can pin.

The bundle is fully loaded first (manifest validation, weight digests, shapes, finite tensors), so a
digest is only ever printed for a bundle that `ecgkt predict` and `ecgkt serve` would accept.
`ecgkt serve --expect-sha256 HEX` then refuses any other bundle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("bundle-hash")(bundle_hash)


def bundle_hash(
    bundle: Annotated[Path, typer.Argument(help="Model bundle folder.", show_default=False)],
) -> None:
    """Verify a bundle and print its SHA-256 (every file's name and digest), for `serve --expect-sha256`."""
    from ecgkt.bundle import load_bundle
    from ecgkt.bundle_integrity import bundle_digest

    load_bundle(bundle)
    typer.echo(bundle_digest(bundle))
