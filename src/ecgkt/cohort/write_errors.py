"""Write failures of the build (a full disk above all) as one clear, resumable error.

Why this module exists: the signal array is a memory-mapped `.npy`. NumPy creates it *sparse*
(the size is set, no block is allocated), so on a full disk the first store into an unallocated
page cannot be backed and the kernel kills the process with SIGBUS — no exception, no message,
exit 135. `preallocate` reserves every block up front (`os.posix_fallocate`, or zeros written
where the file system cannot fallocate), so a full disk becomes an `ENOSPC` OSError before a
single sample is written, and every later memmap store lands in allocated space.

Every write failure of the build (Parquet parts, markers, JSON, the store's tables) is caught
once by `build_store` — writes whose errors do not name the file are wrapped in `naming(path)` —
and turned into a `BuildWriteError`: one line naming the path and the cause ("no space left on device"), saying
that the staging folder `OUT.partial` is kept and resumes. Resuming is safe because every file of
the build is written to a temporary name and renamed, and every stage marker is written last
(see ecgkt/cohort/README.md), so a failed write never leaves a file that a resumed build trusts.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl

from ecgkt.errors import UserError

__all__ = [
    "BuildWriteError",
    "is_write_failure",
    "naming",
    "preallocate",
    "remove_temporary_files",
    "write_error",
]

# errno values that mean "the output cannot be written" rather than a bug.
_SPACE_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_FULL_BYTES = 1 << 20  # less free space than this after a failed write: the disk is full
_ZERO_BLOCK = 8 << 20  # bytes of zeros written at a time where fallocate is not supported


class BuildWriteError(UserError):
    """The build could not write its output (full disk, quota, read-only or failing file system)."""


def _errno_of(error: BaseException) -> int | None:
    """The errno of an OSError, or the one Polars/Arrow quote in their message ('os error 28')."""
    if isinstance(error, OSError) and error.errno is not None:
        return error.errno
    text = str(error)
    for code in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EACCES, errno.EFBIG):
        if f"os error {code})" in text or f"[errno {code}]" in text.lower():
            return code
    return None


def is_write_failure(error: BaseException) -> bool:
    """An OSError, or a Polars error caused by one (Polars wraps I/O errors in ComputeError)."""
    if isinstance(error, OSError):
        return True
    return isinstance(error, pl.exceptions.PolarsError) and _errno_of(error) is not None


def write_error(error: BaseException, path: Path, staging: Path) -> BuildWriteError:
    """One line: which path, why, and what happens to the staging folder."""
    code = _errno_of(error)
    if code in _SPACE_ERRNOS:
        cause = "no space left on device" if code == errno.ENOSPC else "disk quota exceeded"
        fix = "free space"
    else:
        cause = os.strerror(code) if code is not None else str(error).splitlines()[0]
        cause = cause[0].lower() + cause[1:] if cause else "write failed"
        fix = "fix this"
    if not staging.is_dir():  # failed before the staging folder existed (e.g. a read-only parent)
        return BuildWriteError(f"cannot write {path}: {cause}; nothing was written: {fix} and run the command again")
    return BuildWriteError(
        f"cannot write {path}: {cause}; the partial build {staging} is kept (no half-written file in it): "
        f"{fix} and run the same command again to resume, or delete {staging}"
    )


@contextmanager
def naming(path: Path) -> Iterator[None]:
    """Re-raise a write failure inside the block as an OSError whose filename is `path`.

    Python's `write` and Polars' Parquet writer report ENOSPC without the file's name, and Polars
    sometimes without the cause either ("Invalid thrift: transport error" when the footer does not
    fit). The block only writes, so any Polars error in it is a write failure; its cause is taken
    from the message, else from the file system: nearly no free space left means ENOSPC. Use it
    *inside* the block that removes a temporary file, so the space check sees the disk as it was.
    `build_store` turns the named OSError into the one-line `BuildWriteError`.
    """
    try:
        yield
    except (OSError, pl.exceptions.PolarsError) as error:
        if isinstance(error, OSError) and error.filename:
            raise
        code = _errno_of(error)
        if code is None and _nearly_full(path):
            code = errno.ENOSPC
        reason = os.strerror(code) if code is not None else f"write failed ({str(error).splitlines()[0]})"
        raise OSError(code if code is not None else errno.EIO, reason, str(path)) from error


def _nearly_full(path: Path) -> bool:
    """Less than `_FULL_BYTES` available to unprivileged writers on the file system holding `path`."""
    folder = path if path.is_dir() else path.parent
    try:
        stats = os.statvfs(folder)
    except (OSError, AttributeError):  # no statvfs on Windows
        return False
    return stats.f_bavail * stats.f_frsize < _FULL_BYTES


def preallocate(path: Path, *, fresh: bool) -> None:
    """Reserve every block of `path` (its current size) so memory-mapped stores can never SIGBUS.

    `fresh`: the file was just created (all zeros), so where fallocate is not supported the blocks
    may be reserved by writing zeros; an existing file (a resumed build) is never overwritten.
    """
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        if hasattr(os, "posix_fallocate"):
            try:
                os.posix_fallocate(handle.fileno(), 0, size)
                return
            except OSError as error:
                if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                    raise OSError(error.errno, error.strerror, str(path)) from error
        if not fresh:
            return
        zeros = bytes(min(_ZERO_BLOCK, max(size, 1)))
        for offset in range(0, size, len(zeros)):
            handle.seek(offset)
            handle.write(zeros[: min(len(zeros), size - offset)])
        handle.flush()
        os.fsync(handle.fileno())


def remove_temporary_files(staging: Path) -> None:
    """Delete the temporary files a failed write may leave in the staging folder (never real parts).

    Temporary names: `.NAME.tmp` (store tables), `.NAME.XXXX.tmp` (atomic_files), `*.tmp` markers
    under `.build/`, and `.signals.compact.npy`. Renamed files never carry these names.
    """
    if not staging.is_dir():
        return
    for candidate in staging.rglob("*"):
        name = candidate.name
        temporary = name.endswith(".tmp") or name == ".signals.compact.npy"
        if temporary and candidate.is_file():
            candidate.unlink(missing_ok=True)
