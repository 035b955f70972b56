"""SCP-ECG (EN 1064 / ISO 11073-91064), the binary standard communications protocol for ECGs.

Implemented from the standard's record layout (all integers little-endian):
- bytes 0–1 CRC-CCITT over the rest of the record, bytes 2–5 record length; then sections, each
  with a 16-byte ID header (CRC, section id, section length, version, protocol, reserved).
- Section 0: pointer table of 10-byte entries (id uint16, length uint32, 1-based byte index uint32).
- Section 3: lead definition: lead count, flags (bit 0 = reference-beat subtraction), then per
  lead start sample, end sample (uint32, 1-based) and lead id (uint8; 1 = I, 2 = II, 3–8 = V1–V6,
  61–64 = III, aVR, aVL, aVF).
- Section 6: rhythm data: amplitude value multiplier (uint16, nV per unit), sample interval
  (uint16, µs), difference encoding (0 none, 1 first, 2 second difference), bimodal flag, then
  per-lead byte counts (uint16) and the data.

Supported: uncompressed (no Section 2) data with none/first/second-difference encoding. Refused
with a clear error rather than decoded approximately: Huffman-coded data (Section 2 present),
reference-beat subtraction and bimodal compression. No permissively licensed maintained Python
SCP-ECG library was found; this reader is ours.
"""

from __future__ import annotations

import binascii
import struct
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ecgkt.signals.formats._base import DEFAULT_MAX_BYTES, FormatError, FormatRecord, assemble_leads, check_size

__all__ = ["SCP_LEAD_IDS", "looks_like_scp", "read_scp_ecg"]

FORMAT = "SCP-ECG"
SCP_LEAD_IDS: dict[int, str] = {
    1: "I", 2: "II", 3: "V1", 4: "V2", 5: "V3", 6: "V4", 7: "V5", 8: "V6",
    61: "III", 62: "aVR", 63: "aVL", 64: "aVF",
}
_SECTION_HEADER = 16


def looks_like_scp(head: bytes) -> bool:
    """Section 0's ID header follows the 6-byte record header: id 0, and "SCPECG" in its reserved bytes."""
    return len(head) >= 22 and head[8:10] == b"\x00\x00" and head[16:22] == b"SCPECG"


def _crc_ok(block: bytes) -> bool:
    stored = int.from_bytes(block[0:2], "little")
    return stored == binascii.crc_hqx(block[2:], 0xFFFF)


def _sections(data: bytes, source: str) -> dict[int, bytes]:
    """Section id -> section bytes (with its 16-byte header), from the Section 0 pointer table."""
    if len(data) < 6 + _SECTION_HEADER:
        raise FormatError(source, f"{FORMAT}: file too short for an SCP record")
    declared = int.from_bytes(data[2:6], "little")
    if declared != len(data):
        problem = f"{FORMAT}: record declares {declared} bytes but the file has {len(data)} (truncated?)"
        raise FormatError(source, problem)
    if not _crc_ok(data):
        raise FormatError(source, f"{FORMAT}: record CRC does not match (file corrupted)")
    section0_length = int.from_bytes(data[10:14], "little")
    table = data[6 + _SECTION_HEADER : 6 + section0_length]
    sections: dict[int, bytes] = {}
    for offset in range(0, len(table) - 9, 10):
        section_id, length, index = struct.unpack_from("<HII", table, offset)
        if length == 0 or index == 0:
            continue
        start = index - 1
        if start + length > len(data) or length < _SECTION_HEADER:
            raise FormatError(source, f"{FORMAT}: section {section_id} points outside the file")
        block = data[start : start + length]
        if int.from_bytes(block[2:4], "little") != section_id:
            raise FormatError(source, f"{FORMAT}: section {section_id} header does not match its pointer")
        if not _crc_ok(block):
            raise FormatError(source, f"{FORMAT}: section {section_id} CRC does not match (file corrupted)")
        sections[section_id] = block
    return sections


def _undifference(values: NDArray[np.int64], order: int) -> NDArray[np.int64]:
    if order == 0:
        return values
    if order == 1:
        return np.cumsum(values)
    out = np.empty_like(values)
    for i, d in enumerate(values):  # x[n] = d[n] + 2 x[n-1] − x[n-2]
        out[i] = d if i < 2 else d + 2 * out[i - 1] - out[i - 2]
    return out


def read_scp_ecg(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> FormatRecord:
    """Read the rhythm data (Section 6) of an uncompressed SCP-ECG record; see the module docstring."""
    source = str(path)
    check_size(path, max_bytes)
    data = path.read_bytes()
    sections = _sections(data, source)
    if 2 in sections:
        raise FormatError(source, f"{FORMAT}: Huffman-coded data (Section 2) is not supported; export uncompressed")
    if 3 not in sections or 6 not in sections:
        raise FormatError(source, f"{FORMAT}: lead definition (Section 3) or rhythm data (Section 6) missing")
    lead_section = sections[3][_SECTION_HEADER:]
    n_leads, flags = lead_section[0], lead_section[1]
    if flags & 0x01:
        raise FormatError(source, f"{FORMAT}: reference-beat subtraction is not supported; export without it")
    if len(lead_section) < 2 + 9 * n_leads:
        raise FormatError(source, f"{FORMAT}: Section 3 is shorter than its {n_leads} lead entries")
    lead_ids = []
    for k in range(n_leads):
        start, end, lead_id = struct.unpack_from("<IIB", lead_section, 2 + 9 * k)
        lead_ids.append((start, end, lead_id))
    rhythm = sections[6][_SECTION_HEADER:]
    if len(rhythm) < 6 + 2 * n_leads:
        raise FormatError(source, f"{FORMAT}: Section 6 is shorter than its header")
    avm_nv, interval_us, difference, bimodal = struct.unpack_from("<HHBB", rhythm, 0)
    if bimodal:
        raise FormatError(source, f"{FORMAT}: bimodal compression is not supported")
    if difference not in (0, 1, 2):
        raise FormatError(source, f"{FORMAT}: difference encoding {difference} not defined")
    if avm_nv == 0 or interval_us == 0:
        raise FormatError(source, f"{FORMAT}: amplitude multiplier or sample interval is zero")
    byte_counts = struct.unpack_from(f"<{n_leads}H", rhythm, 6)
    offset = 6 + 2 * n_leads
    channels = []
    notes: list[str] = []
    for (start, end, lead_id), count in zip(lead_ids, byte_counts, strict=True):
        label = SCP_LEAD_IDS.get(lead_id, f"SCP lead {lead_id}")
        chunk = rhythm[offset : offset + count]
        offset += count
        if len(chunk) != count or count % 2:
            raise FormatError(source, f"{FORMAT}: lead {label}: data truncated")
        values = _undifference(np.frombuffer(chunk, dtype="<i2").astype(np.int64), difference)
        expected = end - start + 1
        if values.size != expected:
            problem = f"{FORMAT}: lead {label}: {values.size} samples but Section 3 declares {expected}"
            raise FormatError(source, problem)
        channels.append((label, values.astype(np.float64) * (avm_nv * 1e-6)))
    return assemble_leads(source, FORMAT, channels, round(1e6 / interval_us, 6), notes)
