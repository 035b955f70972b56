"""Vendor ECG formats: GE MUSE XML, GE CardioSoft XML, Philips XML, HL7 aECG, SCP-ECG, EDF/EDF+.

`detect_format(path)` names the format from the suffix and a sniff of the content (the XML root
element, EDF's header, SCP's Section 0 signature), so a MUSE export called `.txt` or an EDF without
suffix is still recognised; `read_format(path)` dispatches to the reader. Every reader returns a
`FormatRecord` (signal in mV as (n_samples, n_leads), lead names, sampling rate, notes) and raises
`FormatError` (a `UserError` naming the file) for anything it cannot read safely.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from ecgkt.signals.formats._base import DEFAULT_MAX_BYTES, FormatError, FormatRecord
from ecgkt.signals.formats.edf import read_edf
from ecgkt.signals.formats.ge_cardiosoft import read_ge_cardiosoft
from ecgkt.signals.formats.ge_muse import read_ge_muse
from ecgkt.signals.formats.hl7_aecg import read_hl7_aecg
from ecgkt.signals.formats.philips import read_philips
from ecgkt.signals.formats.scp_ecg import looks_like_scp, read_scp_ecg

__all__ = [
    "DEFAULT_MAX_BYTES",
    "FORMAT_SUFFIXES",
    "READERS",
    "STORED_SUFFIX",
    "FormatError",
    "FormatRecord",
    "detect_format",
    "read_format",
    "sniff_format",
]

READERS: dict[str, Callable[..., FormatRecord]] = {
    "ge-muse": read_ge_muse,
    "ge-cardiosoft": read_ge_cardiosoft,
    "philips": read_philips,
    "hl7-aecg": read_hl7_aecg,
    "scp-ecg": read_scp_ecg,
    "edf": read_edf,
}
FORMAT_SUFFIXES: tuple[str, ...] = (".xml", ".edf", ".scp")
_XML_ROOTS = {
    "RestingECG": "ge-muse",
    "CardiologyXML": "ge-cardiosoft",
    "restingecgdata": "philips",
    "AnnotatedECG": "hl7-aecg",
}
_SNIFF_BYTES = 64 * 1024


def _xml_root(head: bytes) -> str | None:
    """Local name of the first element, skipping the declaration, comments and a DOCTYPE."""
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        text = head.decode("utf-16", errors="ignore")
    else:
        text = head.decode("utf-8-sig", errors="ignore")
    text = re.sub(r"<\?.*?\?>|<!--.*?-->", "", text, flags=re.DOTALL)
    text = re.sub(r"<!DOCTYPE[^\[>]*(\[.*?\])?\s*>", "", text, flags=re.DOTALL)
    match = re.search(r"<([A-Za-z_][\w.:-]*)", text)
    return match.group(1).rsplit(":", 1)[-1] if match else None


# File name to store an upload under so that `read_ecg` takes it to the same reader.
STORED_SUFFIX: dict[str, str] = {
    "ge-muse": ".xml", "ge-cardiosoft": ".xml", "philips": ".xml", "hl7-aecg": ".xml", "scp-ecg": ".scp", "edf": ".edf",
}


def sniff_format(head: bytes) -> str | None:
    """The format key from the first bytes alone (uploads have no trustworthy name), or None."""
    if head.startswith(b"0       ") and len(head) >= 256 and head[184:192].strip().isdigit():
        return "edf"
    if looks_like_scp(head):
        return "scp-ecg"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"<") or head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return _XML_ROOTS.get(_xml_root(head) or "")
    return None


def detect_format(path: Path) -> str | None:
    """The format key of a vendor file (see `READERS`), or None when it is none of them."""
    suffix = path.suffix.lower()
    if suffix in (".edf", ".bdf"):
        return "edf"
    if suffix == ".scp":
        return "scp-ecg"
    try:
        with path.open("rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except OSError:
        return None
    sniffed = sniff_format(head)
    if sniffed is not None:
        return sniffed
    return "xml-unknown" if suffix == ".xml" else None


def read_format(path: Path | str, fmt: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> FormatRecord:
    """Read a vendor file (format detected unless given); raises `FormatError` naming the file."""
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise FormatError(source, "no such file")
    fmt = fmt or detect_format(path)
    if fmt == "xml-unknown":
        raise FormatError(
            source,
            "XML file of an unknown kind: expected a GE MUSE <RestingECG>, GE CardioSoft <CardiologyXML>, "
            "Philips <restingecgdata> or HL7 <AnnotatedECG> document",
        )
    if fmt is None or fmt not in READERS:
        raise FormatError(source, "not a recognised ECG file (GE MUSE/CardioSoft, Philips, HL7 aECG XML, SCP-ECG, EDF)")
    return READERS[fmt](path, max_bytes)
