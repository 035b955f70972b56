"""Hostile and broken vendor files get one clear error naming the file, never a hang, crash or guess."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from ecgkt.convert.writers import WriteOptions, write_ge_muse, write_scp_ecg
from ecgkt.errors import UserError
from ecgkt.signals.formats import FormatError, read_format
from ecgkt.signals.leads import CANONICAL_LEADS
from ecgkt.signals.readers import EcgInputError, read_ecg

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE RestingECG [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<RestingECG><Waveform><WaveformType>&lol3;</WaveformType></Waveform></RestingECG>
"""
EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE AnnotatedECG [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<AnnotatedECG xmlns="urn:hl7-org:v3"><id root="&xxe;"/></AnnotatedECG>
"""


def _signal() -> np.ndarray:
    t = np.arange(5000) / 500
    return np.stack([0.5 * np.sin(2 * np.pi * (1 + k / 10) * t) for k in range(12)], axis=1)


def test_billion_laughs_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "laughs.xml"
    path.write_text(BILLION_LAUGHS)
    with pytest.raises(FormatError, match=r"laughs\.xml: XML declares entities"):
        read_format(path)
    with pytest.raises(EcgInputError, match=r"laughs\.xml: .*entities"):
        read_ecg(path)


def test_external_entity_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "xxe.xml"
    path.write_text(EXTERNAL_ENTITY)
    with pytest.raises(FormatError, match=r"xxe\.xml: XML (declares entities|references an external entity)"):
        read_format(path)


def test_200_mb_file_is_refused_before_reading(tmp_path: Path) -> None:
    """A sparse 200 MB file (no disk used): the size check fires before any byte is parsed."""
    path = tmp_path / "huge.xml"
    with path.open("wb") as handle:
        handle.write(b'<?xml version="1.0"?><RestingECG>')
        handle.truncate(200 * 1024 * 1024)
    with pytest.raises(EcgInputError, match=r"huge\.xml: file is 210 MB, larger than the 50 MB limit"):
        read_ecg(path)


def test_truncated_base64_is_a_clear_error(tmp_path: Path) -> None:
    good = tmp_path / "good.xml"
    write_ge_muse(good, _signal(), CANONICAL_LEADS, 500.0, WriteOptions(muse_leads=12, muse_median_block=False))
    text = good.read_text()
    first = re.search(r"<WaveFormData>(.*?)</WaveFormData>", text, flags=re.DOTALL)
    assert first is not None
    cut = tmp_path / "cut.xml"
    cut.write_text(text.replace(first.group(1), first.group(1)[: len(first.group(1)) // 2 - 1], 1))
    with pytest.raises(EcgInputError, match=r"cut\.xml: GE MUSE XML: lead I: .*(base64|truncated)"):
        read_ecg(cut)
    # Valid base64 but fewer samples than declared: also named, not padded.
    short = tmp_path / "short.xml"
    payload = first.group(1).replace("\n", "")
    short.write_text(text.replace(first.group(1), payload[:4000], 1))
    with pytest.raises(EcgInputError, match=r"short\.xml: GE MUSE XML: lead I: 1500 samples decoded but .* 5000"):
        read_ecg(short)


def test_truncated_xml_and_unknown_roots(tmp_path: Path) -> None:
    good = tmp_path / "good.xml"
    write_ge_muse(good, _signal(), CANONICAL_LEADS, 500.0)
    broken = tmp_path / "broken.xml"
    broken.write_text(good.read_text()[:3000])
    with pytest.raises(EcgInputError, match=r"broken\.xml: not well-formed XML"):
        read_ecg(broken)
    other = tmp_path / "invoice.xml"
    other.write_text("<invoice><total>3</total></invoice>")
    with pytest.raises(EcgInputError, match=r"invoice\.xml: XML file of an unknown kind"):
        read_ecg(other)


def test_scp_corruption_and_unsupported_compression(tmp_path: Path) -> None:
    path = tmp_path / "rec.scp"
    write_scp_ecg(path, _signal(), CANONICAL_LEADS, 500.0)
    assert read_ecg(path).signal_mv.shape == (12, 5000)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    flipped = tmp_path / "flipped.scp"
    flipped.write_bytes(bytes(data))
    with pytest.raises(EcgInputError, match=r"flipped\.scp: SCP-ECG: record CRC does not match"):
        read_ecg(flipped)
    truncated = tmp_path / "truncated.scp"
    truncated.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(EcgInputError, match=r"truncated\.scp: SCP-ECG: record declares"):
        read_ecg(truncated)


def test_corrupted_philips_xli_is_an_error(tmp_path: Path) -> None:
    source = Path(__file__).resolve().parents[1] / "data" / "formats" / "external" / "philips_sierra_3191723_1-04.xml"
    text = source.read_bytes().decode("utf-16")
    match = re.search(r'(<parsedwaveforms[^>]*>)(.*?)(</parsedwaveforms>)', text, flags=re.DOTALL)
    assert match is not None
    damaged = tmp_path / "damaged.xml"
    damaged.write_text(text.replace(match.group(2), match.group(2)[:2000], 1), encoding="utf-16")
    with pytest.raises(UserError, match=r"damaged\.xml: Philips XML: .*(truncated|corrupted|base64)"):
        read_format(damaged)
