"""Writing a file so that a reader sees the old content or the new one, never half of it.

Every command that writes results (configs, bundle sidecars, reports, prediction tables, benchmark
results) goes through `write_text_atomically`; writers of other formats (PDF and PNG reports, the
build's Parquet parts) go through `replacing`; a whole folder (a model bundle, a store) is staged
with `replacing_folder`. Either way the content goes to a temporary file in
the target's folder (same file system, so the rename is atomic) that replaces the target with
`os.replace`. A failure or a kill mid-write leaves the previous file intact and removes the
temporary file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["replacing", "replacing_folder", "swap_in_folder", "write_text_atomically"]


@contextmanager
def replacing(path: str | os.PathLike[str], *, suffix: str = "", create_parent: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write to; it replaces `path` when the block succeeds
    and is removed when it fails. `suffix` ends the temporary name (some writers pick the format
    from it). `create_parent=False`: a missing folder is an error rather than a new folder.
    """
    target = Path(path)
    if create_parent:
        target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(handle)
    try:
        yield Path(temporary)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_text_atomically(
    path: str | os.PathLike[str], text: str, *, newline: str | None = None, create_parent: bool = True
) -> Path:
    """Write `text` (UTF-8) to `path` atomically; `newline` as for `open` ("" keeps CSV line ends as given).

    `create_parent=False` for files that belong inside an existing folder (a bundle): a missing
    folder is then an error rather than a new, incomplete folder.
    """
    with replacing(path, create_parent=create_parent) as temporary:
        temporary.write_text(text, encoding="utf-8", newline=newline)
    return Path(path)


def swap_in_folder(staging: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Rename a complete `staging` folder onto `target` (same parent folder, so the rename is atomic).

    An existing `target` is first renamed aside and deleted only after the new folder is in place; a
    kill between the two renames leaves the old folder under a hidden `.NAME.old.*` sibling, never a
    mix of both. The caller decides beforehand whether replacing an existing folder is allowed.
    """
    destination = Path(target)
    if destination.exists():
        trash = Path(tempfile.mkdtemp(prefix=f".{destination.name}.old.", dir=destination.parent))
        os.replace(destination, trash / destination.name)
        os.replace(staging, destination)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(staging, destination)
    return destination


@contextmanager
def replacing_folder(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temporary folder beside `path` to fill; it becomes `path` (`swap_in_folder`)
    when the block succeeds and is removed when it fails, so a half-written folder never exists at
    `path`. The caller decides beforehand whether replacing an existing folder is allowed.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield staging
        swap_in_folder(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
