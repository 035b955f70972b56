"""Writing a text file so that a reader sees the old content or the new one, never half of it.

Every command that writes results (configs, bundle sidecars, reports, prediction tables, benchmark
results) goes through `write_text_atomically`: the text goes to a temporary file in the target's
folder (same file system, so the rename is atomic) and replaces the target with `os.replace`. A
failure or a kill mid-write leaves the previous file intact and removes the temporary file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_text_atomically(
    path: str | os.PathLike[str], text: str, *, newline: str | None = None, create_parent: bool = True
) -> Path:
    """Write `text` (UTF-8) to `path` atomically; `newline` as for `open` ("" keeps CSV line ends as given).

    `create_parent=False` for files that belong inside an existing folder (a bundle): a missing
    folder is then an error rather than a new, incomplete folder.
    """
    target = Path(path)
    if create_parent:
        target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline=newline) as stream:
            stream.write(text)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target
