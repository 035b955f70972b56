"""A full disk (or any write error) is one clear line, exit 2, and the build resumes once space is freed.

Before: the signal array was a sparse memmap, so a full disk killed the build with SIGBUS (exit
135, no message, `.partial` left). Two ways to test it: a real, tiny tmpfs (needs root / the
right to mount; skipped with the reason otherwise) and a simulated ENOSPC (always runs).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pytest
from test_resume import _assert_same_store
from tiny_mimic import TINY_CONFIG
from typer.testing import CliRunner

import ecgkt.cohort.pipeline as pipeline
import ecgkt.cohort.write_errors as write_errors
from ecgkt.cli import app
from ecgkt.cohort.pipeline import build_store
from ecgkt.cohort.write_errors import BuildWriteError, naming, preallocate
from ecgkt.errors import UserError
from ecgkt.mimic.layout import MimicFolders
from ecgkt.store import StoreWriter

CLI_OPTIONS = ["--workers", "1", "--quiet", "--lab-label-min-positives", "0", "--lab-label-min-negatives", "0"]
CLI_OPTIONS += ["--min-label-count", "2"]


def _no_temporary_files(staging: Path) -> None:
    leftovers = [p for p in staging.rglob("*") if p.name.endswith(".tmp") or p.name == ".signals.compact.npy"]
    assert leftovers == []


# ---- a real full disk: a tiny tmpfs ----------------------------------------------------------------


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False)


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """`mount(size)` mounts a tmpfs of `size` (e.g. "64k") and returns it; remount with a new size."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        folder = tmp_path / "tmpfs"
        if folder in mounted:
            result = _run(["mount", "-o", f"remount,size={size}", str(folder)])
        else:
            folder.mkdir()
            result = _run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)])
            if result.returncode == 0:
                mounted.append(folder)
        if result.returncode != 0:
            pytest.skip(
                f"mounting a tmpfs is not permitted here ({result.stderr.strip() or result.returncode}); "
                "the simulated-ENOSPC tests below cover the same code paths"
            )
        return folder

    if shutil.which("mount") is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root and the mount command; the simulated-ENOSPC tests cover this")
    yield mount
    for folder in mounted:
        if _run(["umount", str(folder)]).returncode != 0:
            _run(["umount", "-l", str(folder)])  # a worker still holding a file: detach lazily


@pytest.fixture(scope="module")
def reference_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The synthetic root (10 patients) and its store built by the CLI with `CLI_OPTIONS`."""
    from tiny_mimic import TinyMimic

    root = tmp_path_factory.mktemp("full_disk")
    TinyMimic.default(10).write(root / "mimic")
    out = root / "reference"
    result = CliRunner().invoke(app, ["build", "--synthetic", str(root / "mimic"), "--out", str(out), *CLI_OPTIONS])
    assert result.exit_code == 0, result.output
    return root / "mimic", out


# sizes at which the tiny build runs out of space in stage A (Parquet parts), B (signals.npy) and C
# (the store's files; signals.npy alone is ≈ 0.6 MB here)
@pytest.mark.parametrize(
    ("size", "where", "signals_written"),
    [("16k", "part_000000.parquet", False), ("256k", "signals.npy", False), ("1m", "store.partial/", True)],
)
def test_full_tmpfs_is_one_line_and_resumes(
    tiny_tmpfs: Callable[[str], Path],
    reference_store: tuple[Path, Path],
    size: str,
    where: str,
    signals_written: bool,
) -> None:
    synthetic, reference = reference_store
    disk = tiny_tmpfs(size)
    out = disk / "store"
    command = ["build", "--synthetic", str(synthetic), "--out", str(out), *CLI_OPTIONS]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.output.count("\n") == 1
    assert "no space left on device" in result.output and where in result.output
    assert f"cannot write {disk}" in result.output and "run the same command again to resume" in result.output
    staging = disk / "store.partial"
    assert staging.is_dir() and not out.exists()
    assert (staging / "signals.npy").exists() == signals_written  # stage C failed: stage B kept
    _no_temporary_files(staging)

    tiny_tmpfs("8m")  # space freed: the same command resumes and gives the uninterrupted store
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    assert not staging.exists()
    _assert_same_store(out, reference)


# ---- a simulated ENOSPC (no mount rights needed) ---------------------------------------------------


def _enospc(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_enospc_preallocating_signals_is_an_error_not_sigbus(
    tiny_folders: MimicFolders, tiny_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(write_errors.os, "posix_fallocate", _enospc)
    out = tmp_path / "store"
    with pytest.raises(BuildWriteError, match=r"cannot write .*store\.partial/signals\.npy: no space left on device"):
        build_store(tiny_folders, out, TINY_CONFIG)
    staging = tmp_path / "store.partial"
    assert not (staging / "signals.npy").exists()  # its space given back
    assert (staging / ".build" / "tables" / "done.json").is_file()  # stage A kept: resumable
    monkeypatch.undo()
    build_store(tiny_folders, out, TINY_CONFIG)
    _assert_same_store(out, tiny_store)


def test_enospc_in_a_parquet_part_names_it_and_leaves_no_temporary_file(
    tiny_folders: MimicFolders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(self: pl.DataFrame, file: object, *args: object, **kwargs: object) -> None:
        Path(str(file)).write_bytes(b"PAR1 half")  # a half-written file, as a real failure leaves
        raise pl.exceptions.ComputeError("parquet: File out of specification: Invalid thrift: transport error")

    monkeypatch.setattr(write_errors, "_nearly_full", lambda path: True)  # the cause Polars does not name
    monkeypatch.setattr(pl.DataFrame, "write_parquet", full)
    with pytest.raises(BuildWriteError, match=r"cannot write .*/\.build/tables/.*\.parquet: no space left on device"):
        build_store(tiny_folders, tmp_path / "store", TINY_CONFIG)
    _no_temporary_files(tmp_path / "store.partial")


def test_other_write_errors_name_the_store_file(
    tiny_folders: MimicFolders, tiny_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def read_only(self: StoreWriter, name: str, frame: pl.DataFrame) -> None:
        (self.staging / f".{name}.tmp").write_text("half")
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(StoreWriter, "write_table", read_only)
    out = tmp_path / "store"
    with pytest.raises(BuildWriteError) as caught:
        build_store(tiny_folders, out, TINY_CONFIG)
    message = str(caught.value)
    assert isinstance(caught.value, UserError) and "\n" not in message
    assert "records.parquet: read-only file system" in message and "fix this and run the same command" in message
    _no_temporary_files(tmp_path / "store.partial")
    monkeypatch.undo()
    build_store(tiny_folders, out, TINY_CONFIG)  # resumes: signals are not read again
    _assert_same_store(out, tiny_store)


def test_cli_write_error_is_one_red_line_exit_2(
    tiny_folders: MimicFolders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "write_parquet_atomically", _enospc)
    root = tiny_folders.ecg.parent
    result = CliRunner().invoke(app, ["build", "--synthetic", str(root), "--out", str(tmp_path / "s"), *CLI_OPTIONS])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.startswith("error: cannot write") and "no space left on device" in result.output


def test_naming_and_preallocate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "x.bin"
    with pytest.raises(OSError) as caught, naming(target):
        raise pl.exceptions.ComputeError("IO error: No space left on device (os error 28)")
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    # where fallocate is not supported a fresh file gets real zeros; an existing one is never rewritten
    target.write_bytes(b"\x00" * 10_000)
    monkeypatch.setattr(
        write_errors.os, "posix_fallocate", lambda *a: (_ for _ in ()).throw(OSError(errno.EOPNOTSUPP, "no"))
    )
    preallocate(target, fresh=True)
    assert target.read_bytes() == b"\x00" * 10_000
    target.write_bytes(b"\x01" * 10)
    preallocate(target, fresh=False)
    assert target.read_bytes() == b"\x01" * 10


def test_enospc_writing_a_signal_chunk_marker_names_the_staging_folder(
    tiny_folders: MimicFolders, tiny_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ecgkt.cohort.signals as signals

    calls: list[int] = []
    original = signals._write_marker

    def full_after_one(state_dir: Path, result: object) -> None:
        calls.append(1)
        if len(calls) > 1:
            (state_dir / "chunk_000001.tmp").write_text("{")  # the half-written marker a full disk leaves
            _enospc()
        original(state_dir, result)  # type: ignore[arg-type]

    monkeypatch.setattr(signals, "_write_marker", full_after_one)
    out = tmp_path / "store"
    with pytest.raises(BuildWriteError, match=r"cannot write .*store\.partial: no space left on device"):
        build_store(tiny_folders, out, TINY_CONFIG)
    staging = tmp_path / "store.partial"
    _no_temporary_files(staging)
    assert len(list((staging / ".build" / "signals").glob("chunk_*.json"))) == 1
    monkeypatch.undo()
    build_store(tiny_folders, out, TINY_CONFIG)
    _assert_same_store(out, tiny_store)


def test_write_error_before_the_staging_folder_exists_says_nothing_was_written(tmp_path: Path) -> None:
    from ecgkt.cohort.write_errors import write_error

    error = write_error(
        PermissionError(errno.EACCES, "Permission denied"), tmp_path / "ro" / "s.partial", tmp_path / "x"
    )
    assert str(error) == (
        f"cannot write {tmp_path / 'ro' / 's.partial'}: permission denied; nothing was written: "
        "fix this and run the command again"
    )


def test_enospc_compacting_signals_leaves_the_array_and_resumes(
    make_mimic: Callable[..., MimicFolders], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A skipped record makes finalise copy signals.npy without it (a second memmap, preallocated too)."""

    def shorten(mimic) -> None:  # type: ignore[no-untyped-def]
        mimic.ecgs[3].seconds = 8.0

    folders = make_mimic(6, shorten)
    reference = build_store(folders, tmp_path / "reference", TINY_CONFIG)
    real = os.posix_fallocate

    def full_for_the_copy(fd: int, offset: int, length: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".signals.compact.npy"):
            _enospc()
        real(fd, offset, length)

    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to tell the files apart")
    monkeypatch.setattr(write_errors.os, "posix_fallocate", full_for_the_copy)
    out = tmp_path / "store"
    with pytest.raises(BuildWriteError, match=r"cannot write .*\.signals\.compact\.npy: no space left on device"):
        build_store(folders, out, TINY_CONFIG)
    staging = tmp_path / "store.partial"
    _no_temporary_files(staging)
    assert (staging / "signals.npy").is_file()  # the uncompacted array is intact
    monkeypatch.undo()
    resumed: list[int] = []
    build_store(folders, out, TINY_CONFIG, on_signal_chunk=resumed.append)
    assert resumed == []  # no signal chunk read again
    _assert_same_store(out, reference)
