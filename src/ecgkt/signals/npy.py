"""NumPy files → `RawEcg`: `.npy` (+ sidecar JSON) and `.npz` (`signal`, `sampling_rate_hz`, `leads`, `units`).

Nothing is unpickled (`allow_pickle=False`), and a `.npz` is checked from its zip directory and every
member's `.npy` header before any array is read (`check_npz`): at most `MAX_NPZ_MEMBERS` plain `.npy`
members, unencrypted, expanding to at most `MAX_DECOMPRESSED_BYTES` in total. The CLI and the service
run the same check, so a 1 MB archive of compressed zeros cannot become gigabytes in either.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from ecgkt.signals.assembly import RawEcg
from ecgkt.signals.errors import EcgInputError
from ecgkt.signals.limits import MAX_DECOMPRESSED_BYTES, MAX_NPZ_MEMBERS
from ecgkt.signals.sidecar import Sidecar, read_sidecar

__all__ = ["NPY_MAGIC", "check_npz", "npy_header", "raw_from_array", "read_npy", "read_npz"]

NPY_MAGIC = b"\x93NUMPY"
MAX_NPY_HEADER_BYTES = 64 * 1024


def npy_header(data: bytes, source: str, kind: str = "invalid_numpy") -> tuple[tuple[int, ...], np.dtype[Any], int]:
    """(shape, dtype, header length) of a .npy from its first bytes, without unpickling or allocating."""
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version in ((2, 0), (3, 0)):
            shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except ValueError as error:
        raise EcgInputError(source, f"malformed .npy header ({error})", kind) from None
    return tuple(int(n) for n in shape), dtype, stream.tell()


def check_npy_dtype(dtype: np.dtype[Any], source: str, allow_text: bool = False, kind: str = "invalid_numpy") -> None:
    if dtype.hasobject or dtype.fields is not None:
        raise EcgInputError(source, "object or structured arrays are refused (they need pickle)", "unsafe_numpy")
    allowed = "biuf" + ("US" if allow_text else "")
    if dtype.kind not in allowed:
        raise EcgInputError(source, f"array dtype {dtype} is not numeric", kind)


def check_npz(archive_file: IO[bytes] | Path, source: str, compressed_size: int) -> None:
    """Zip structure, member names, declared sizes and each member's .npy header (no array is read)."""
    try:
        archive = zipfile.ZipFile(archive_file)
    except (zipfile.BadZipFile, OSError) as error:
        raise EcgInputError(source, f"not a readable .npz (zip) archive ({error})", "invalid_npz") from None
    with archive:
        members = archive.infolist()
        if not members or len(members) > MAX_NPZ_MEMBERS:
            raise EcgInputError(
                source, f"an ECG .npz holds 1 to {MAX_NPZ_MEMBERS} arrays, found {len(members)}", "invalid_npz"
            )
        total = 0
        for member in members:
            if member.flag_bits & 0x1:
                raise EcgInputError(source, "encrypted archive members are refused", "invalid_npz")
            if "/" in member.filename or not member.filename.endswith(".npy"):
                raise EcgInputError(
                    source, f"unexpected member {member.filename[:60]!r} (only .npy arrays)", "invalid_npz"
                )
            total += member.file_size
            if total > MAX_DECOMPRESSED_BYTES:
                raise EcgInputError(
                    source,
                    f"archive expands to more than {MAX_DECOMPRESSED_BYTES // 2**20} MiB "
                    f"({compressed_size} bytes compressed), refused (compression bomb?)",
                    "invalid_npz",
                )
            try:
                with archive.open(member) as handle:
                    head = handle.read(MAX_NPY_HEADER_BYTES)
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as error:
                raise EcgInputError(
                    source, f"corrupt .npz member {member.filename[:60]!r} ({error})", "invalid_npz"
                ) from None
            member_source = f"{source}: .npz member {member.filename}"
            if not head.startswith(NPY_MAGIC):
                raise EcgInputError(member_source, "not a .npy array", "invalid_npz")
            shape, dtype, _ = npy_header(head, member_source, "invalid_npz")
            if dtype.hasobject or dtype.fields is not None:
                raise EcgInputError(
                    source,
                    f".npz holds object arrays (member {member.filename[:60]}), refused without pickle",
                    "unsafe_numpy",
                )
            check_npy_dtype(dtype, member_source, allow_text=True)
            declared = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if declared > member.file_size:
                raise EcgInputError(
                    member_source, f"declares {declared} bytes, archive holds {member.file_size}", "truncated_file"
                )


def raw_from_array(array: NDArray[Any], sidecar: Sidecar, source: str, what: str = "array") -> RawEcg:
    """A loaded numeric array plus what its sidecar says → `RawEcg`."""
    return RawEcg(
        source=source,
        signal=_numeric(array, source, what),
        sampling_rate_hz=sidecar.sampling_rate_hz,
        lead_names=sidecar.leads,
        declared_units=sidecar.units,
        units_origin="sidecar JSON",
        notes=sidecar.notes,
    )


def read_npy(path: Path, source: str) -> RawEcg:
    try:
        signal = np.load(path, allow_pickle=False)
    except ValueError as error:
        raise EcgInputError(source, f"not a plain numeric .npy array (object arrays are refused: {error})") from None
    except Exception as error:
        raise EcgInputError(source, f"unreadable .npy file ({error})") from None
    if not isinstance(signal, np.ndarray):
        raise EcgInputError(source, "not a .npy array (an .npz archive? name it .npz)")
    return raw_from_array(signal, read_sidecar(path, source), source)


def read_npz(path: Path, source: str) -> RawEcg:
    check_npz(path, source, path.stat().st_size)
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as error:
        raise EcgInputError(source, f"unreadable .npz file ({error})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise EcgInputError(source, "not an .npz archive (a single array? save it as .npy)")
    with archive:
        keys = set(archive.files)
        if "signal" not in keys:
            raise EcgInputError(source, f".npz has no 'signal' array (keys: {sorted(keys)})")
        try:
            content = {key: archive[key] for key in ("signal", "sampling_rate_hz", "leads", "units") if key in keys}
        except ValueError as error:
            raise EcgInputError(source, f".npz holds object arrays, refused without pickle ({error})") from None
        except Exception as error:
            raise EcgInputError(source, f"corrupt .npz member ({error})") from None
    units = content.get("units")
    leads = content.get("leads")
    return RawEcg(
        source=source,
        signal=_numeric(content["signal"], source, "'signal'"),
        sampling_rate_hz=_npz_rate(content.get("sampling_rate_hz"), source),
        lead_names=_lead_list(None if leads is None else leads.tolist(), source),
        declared_units=None if units is None else str(units),
        units_origin=".npz 'units'",
    )


def _npz_rate(value: NDArray[Any] | None, source: str) -> float | None:
    if value is None:
        return None
    if value.size != 1 or value.dtype.kind not in "iuf":
        raise EcgInputError(
            source, f".npz 'sampling_rate_hz' must be one number, got a {value.dtype} array of shape {value.shape}"
        )
    return float(value.reshape(-1)[0])


def _numeric(array: NDArray[Any], source: str, what: str) -> NDArray[np.float64]:
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise EcgInputError(source, f"{what} has non-numeric dtype {array.dtype}")
    return np.asarray(array, dtype=np.float64)


def _lead_list(value: Any, source: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise EcgInputError(source, f"lead names must be a list of strings, got {str(value)[:80]!r}")
    return tuple(value)
