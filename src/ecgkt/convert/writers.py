"""Writers of each supported ECG format, independent of the readers in `ecgkt.signals.formats`.

They build documents with the standard library (`xml.etree.ElementTree`, `struct`) or the format's
library (`wfdb`, `edfio`) from each format's published layout, and share no code with the readers,
so a golden round trip (WFDB original -> format -> reader) tests both against the layout. Every
writer takes the signal as (n_samples, n_leads) in mV with lead names, quantises to the format's
resolution and writes atomically (temporary file + rename).
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
from numpy.typing import NDArray

from ecgkt.atomic_files import replacing, write_text_atomically

__all__ = [
    "MIMIC_LEAD_ORDER",
    "WRITERS",
    "WriteOptions",
    "write_edf",
    "write_ge_cardiosoft",
    "write_ge_muse",
    "write_hl7_aecg",
    "write_philips",
    "write_scp_ecg",
    "write_wfdb",
]

MIMIC_LEAD_ORDER = ("I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6")
_MUSE_8 = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
_AECG_CODES = {"aVR": "AVR", "aVL": "AVL", "aVF": "AVF"}
_SCP_IDS = {"I": 1, "II": 2, "V1": 3, "V2": 4, "V3": 5, "V4": 6, "V5": 7, "V6": 8,
            "III": 61, "aVR": 62, "aVL": 63, "aVF": 64}


@dataclass(frozen=True)
class WriteOptions:
    """Vendor variants a writer can produce (tests cover each): resolution, stored leads, layout."""

    uv_per_lsb: float = 4.88  # MUSE default; 1.0 for µV files, 1000.0 for 1 mV steps
    muse_leads: int = 8  # 8 (I, II, V1–V6; the usual MUSE export) or 12
    muse_median_block: bool = True  # also write a "Median" Waveform block before the rhythm
    amplitude_unit: str = "uV"  # aECG scale unit: "uV" or "mV"
    scp_difference: int = 2  # SCP-ECG difference encoding 0/1/2


def _quantise(signal_mv: NDArray[np.float64], uv_per_lsb: float) -> NDArray[np.int16]:
    counts = np.round(np.nan_to_num(signal_mv) * 1000.0 / uv_per_lsb)
    return np.clip(counts, -32768, 32767).astype("<i2")


def _columns(signal_mv: NDArray[np.float64], leads: Sequence[str], wanted: Sequence[str]) -> NDArray[np.float64]:
    index = {name: i for i, name in enumerate(leads)}
    return np.stack([signal_mv[:, index[name]] for name in wanted], axis=1)


def _write_xml(root: ET.Element, path: Path, doctype: str | None = None) -> None:
    body = ET.tostring(root, encoding="unicode")
    head = '<?xml version="1.0" encoding="UTF-8"?>\n' + (doctype + "\n" if doctype else "")
    write_text_atomically(path, head + body + "\n")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrib)
    if text is not None:
        element.text = text
    return element


def write_ge_muse(path: Path, signal_mv: NDArray[np.float64], leads: Sequence[str], fs: float,
                  options: WriteOptions = WriteOptions()) -> None:
    """GE MUSE RestingECG XML: base64 int16 per lead, `uv_per_lsb` µV per bit, 8 or 12 leads."""
    stored = _MUSE_8 if options.muse_leads == 8 else tuple(leads)
    data = _quantise(_columns(signal_mv, leads, stored), options.uv_per_lsb)
    root = ET.Element("RestingECG")
    _sub(root, "MuseInfo").append(ET.Element("MuseVersion"))
    blocks = [("Median", data[: int(fs * 0.6)]), ("Rhythm", data)] if options.muse_median_block else [("Rhythm", data)]
    for kind, block in blocks:
        waveform = _sub(root, "Waveform")
        _sub(waveform, "WaveformType", kind)
        _sub(waveform, "WaveformStartTime", "0")
        _sub(waveform, "NumberofLeads", str(len(stored)))
        _sub(waveform, "SampleType", "CONTINUOUS_SAMPLES")
        _sub(waveform, "SampleBase", f"{fs:g}")
        _sub(waveform, "SampleExponent", "0")
        for j, name in enumerate(stored):
            lead = _sub(waveform, "LeadData")
            _sub(lead, "LeadByteCountTotal", str(block.shape[0] * 2))
            _sub(lead, "LeadSampleCountTotal", str(block.shape[0]))
            _sub(lead, "LeadAmplitudeUnitsPerBit", f"{options.uv_per_lsb:g}")
            _sub(lead, "LeadAmplitudeUnits", "MICROVOLTS")
            _sub(lead, "LeadID", name)
            _sub(lead, "LeadSampleSize", "2")
            payload = base64.b64encode(np.ascontiguousarray(block[:, j]).tobytes()).decode("ascii")
            _sub(lead, "WaveFormData", "\n".join(payload[k : k + 76] for k in range(0, len(payload), 76)))
    _write_xml(root, path, '<!DOCTYPE RestingECG SYSTEM "restecg.dtd">')


def write_ge_cardiosoft(path: Path, signal_mv: NDArray[np.float64], leads: Sequence[str], fs: float,
                        options: WriteOptions = WriteOptions()) -> None:
    """GE CardioSoft XML: `StripData` with comma-separated integers per lead."""
    data = _quantise(signal_mv, options.uv_per_lsb)
    root = ET.Element("CardiologyXML")
    strip = _sub(root, "StripData")
    _sub(strip, "NumberOfLeads", str(len(leads)))
    _sub(strip, "SampleRate", f"{fs:g}", units="Hz")
    _sub(strip, "ChannelSampleCountTotal", str(data.shape[0]))
    _sub(strip, "Resolution", f"{options.uv_per_lsb:g}", units="uVperLsb")
    for j, name in enumerate(leads):
        _sub(strip, "WaveformData", ",".join(str(int(v)) for v in data[:, j]), lead=name)
    _write_xml(root, path)


def write_philips(path: Path, signal_mv: NDArray[np.float64], leads: Sequence[str], fs: float,
                  options: WriteOptions = WriteOptions()) -> None:
    """Philips XML 1.04 with `compression="Uncompressed"`: int16 lead after lead (no XLI writer)."""
    data = _quantise(signal_mv, options.uv_per_lsb)
    ns = "http://www3.medical.philips.com"
    root = ET.Element(f"{{{ns}}}restingecgdata")
    acquisition = _sub(root, f"{{{ns}}}dataacquisition")
    characteristics = _sub(acquisition, f"{{{ns}}}signalcharacteristics")
    _sub(characteristics, f"{{{ns}}}samplingrate", f"{fs:g}")
    _sub(characteristics, f"{{{ns}}}resolution", f"{options.uv_per_lsb:g}")
    waveforms = _sub(root, f"{{{ns}}}waveforms")
    duration_ms = data.shape[0] * 1000.0 / fs
    parsed = _sub(
        waveforms, f"{{{ns}}}parsedwaveforms",
        base64.b64encode(np.ascontiguousarray(data.T).tobytes()).decode("ascii"),
        dataencoding="Base64", compression="Uncompressed", numberofleads=str(len(leads)),
        leadlabels=" ".join(leads), durationperchannel=f"{duration_ms:g}", samplespersecond=f"{fs:g}",
    )
    assert parsed is not None
    ET.register_namespace("", ns)
    _write_xml(root, path)


def write_hl7_aecg(path: Path, signal_mv: NDArray[np.float64], leads: Sequence[str], fs: float,
                   options: WriteOptions = WriteOptions()) -> None:
    """HL7 aECG: a TIME_ABSOLUTE GLIST_TS and one SLIST_PQ (origin 0, scale, digits) per lead."""
    ns = "urn:hl7-org:v3"
    xsi = "http://www.w3.org/2001/XMLSchema-instance"
    ET.register_namespace("", ns)
    ET.register_namespace("xsi", xsi)

    def q(tag: str) -> str:
        return f"{{{ns}}}{tag}"

    scale_value = options.uv_per_lsb if options.amplitude_unit == "uV" else options.uv_per_lsb / 1000.0
    data = _quantise(signal_mv, options.uv_per_lsb)
    root = ET.Element(q("AnnotatedECG"))
    _sub(root, q("id"), root="2.16.840.1.113883.3.0")
    sequence_set = _sub(_sub(_sub(_sub(root, q("component")), q("series")), q("component")), q("sequenceSet"))
    time = _sub(_sub(sequence_set, q("component")), q("sequence"))
    _sub(time, q("code"), code="TIME_ABSOLUTE", codeSystem="2.16.840.1.113883.5.4")
    value = _sub(time, q("value"), **{f"{{{xsi}}}type": "GLIST_TS"})
    _sub(value, q("head"), value="20260101000000.000")
    _sub(value, q("increment"), value=f"{1.0 / fs:.9g}", unit="s")
    for j, name in enumerate(leads):
        sequence = _sub(_sub(sequence_set, q("component")), q("sequence"))
        code = f"MDC_ECG_LEAD_{_AECG_CODES.get(name, name)}"
        _sub(sequence, q("code"), code=code, codeSystem="2.16.840.1.113883.6.24")
        value = _sub(sequence, q("value"), **{f"{{{xsi}}}type": "SLIST_PQ"})
        _sub(value, q("origin"), value="0", unit=options.amplitude_unit)
        _sub(value, q("scale"), value=f"{scale_value:g}", unit=options.amplitude_unit)
        _sub(value, q("digits"), " ".join(str(int(v)) for v in data[:, j]))
    _write_xml(root, path)


def _scp_section(section_id: int, body: bytes, reserved: bytes = b"\x00" * 6) -> bytes:
    length = 16 + len(body)
    if length % 2:
        body += b"\x00"
        length += 1
    without_crc = struct.pack("<HIBB", section_id, length, 20, 20) + reserved + body
    return struct.pack("<H", binascii.crc_hqx(without_crc, 0xFFFF)) + without_crc


def write_scp_ecg(path: Path, signal_mv: NDArray[np.float64], leads: Sequence[str], fs: float,
                  options: WriteOptions = WriteOptions()) -> None:
    """SCP-ECG without Huffman coding: Sections 0, 1, 3 and 6 (difference encoding per options)."""
    avm_nv = round(options.uv_per_lsb * 1000)
    data = _quantise(signal_mv, options.uv_per_lsb).astype(np.int64)
    n = data.shape[0]
    section3 = bytes([len(leads), 0x04 | (len(leads) << 3) & 0xF8])
    for name in leads:
        section3 += struct.pack("<IIB", 1, n, _SCP_IDS[name])
    encoded = []
    for j in range(len(leads)):
        x = data[:, j]
        if options.scp_difference == 1:
            d = np.concatenate([x[:1], np.diff(x)])
        elif options.scp_difference == 2:
            d = np.concatenate([x[:2], x[2:] - 2 * x[1:-1] + x[:-2]])
        else:
            d = x
        encoded.append(np.clip(d, -32768, 32767).astype("<i2").tobytes())
    section6 = struct.pack("<HHBB", avm_nv, round(1e6 / fs), options.scp_difference, 0)
    section6 += b"".join(struct.pack("<H", len(e)) for e in encoded) + b"".join(encoded)
    section1 = bytes([255, 0, 0])  # header section: terminator tag only (no demographics written)
    bodies = {1: _scp_section(1, section1), 3: _scp_section(3, section3), 6: _scp_section(6, section6)}
    pointer_ids = list(range(12))
    section0_length = 16 + 10 * len(pointer_ids)
    offset = 6 + section0_length + 1  # 1-based index of the byte after section 0
    table = b""
    for section_id in pointer_ids:
        if section_id == 0:
            table += struct.pack("<HII", 0, section0_length, 7)
        elif section_id in bodies:
            table += struct.pack("<HII", section_id, len(bodies[section_id]), offset)
            offset += len(bodies[section_id])
        else:
            table += struct.pack("<HII", section_id, 0, 0)
    record = _scp_section(0, table, b"SCPECG") + b"".join(bodies[k] for k in sorted(bodies))
    length = 6 + len(record)
    without_crc = struct.pack("<I", length) + record
    with replacing(path) as temporary:
        temporary.write_bytes(struct.pack("<H", binascii.crc_hqx(without_crc, 0xFFFF)) + without_crc)


def write_edf(path: Path, signal_mv: NDArray[np.float64], leads: Sequence[str], fs: float,
              options: WriteOptions = WriteOptions()) -> None:
    """EDF+ via edfio: one signal per lead labelled "ECG <lead>" in µV (16-bit digital range)."""
    import edfio

    signals = []
    for j, name in enumerate(leads):
        values = np.nan_to_num(signal_mv[:, j]) * 1000.0
        signals.append(
            edfio.EdfSignal(values, sampling_frequency=fs, label=f"ECG {name}", physical_dimension="uV",
                            physical_range=(-32768 * options.uv_per_lsb, 32767 * options.uv_per_lsb))
        )
    edf = edfio.Edf(signals)
    with replacing(path, suffix=".edf") as temporary:
        edf.write(temporary)


def write_wfdb(path: Path, signal_mv: NDArray[np.float64], leads: Sequence[str], fs: float,
               options: WriteOptions = WriteOptions(), comments: Sequence[str] = ()) -> None:
    """MIMIC-IV-ECG style WFDB record: format 16, gain 200 adu/mV, lead order I, II, III, aVR, aVF, aVL, V1–V6.

    `path` is the record path without extension (`.hea`/`.dat` are written beside it).
    """
    import wfdb

    ordered = _columns(signal_mv, leads, MIMIC_LEAD_ORDER)
    digital = np.clip(np.round(np.nan_to_num(ordered) * 200.0), -32767, 32767).astype(np.int16)
    path.parent.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(
        path.name, fs=fs, units=["mV"] * 12, sig_name=list(MIMIC_LEAD_ORDER), d_signal=digital,
        fmt=["16"] * 12, adc_gain=[200.0] * 12, baseline=[0] * 12, comments=list(comments),
        write_dir=str(path.parent),
    )


WRITERS = {
    "wfdb": write_wfdb,
    "ge-muse": write_ge_muse,
    "ge-cardiosoft": write_ge_cardiosoft,
    "philips": write_philips,
    "hl7-aecg": write_hl7_aecg,
    "scp-ecg": write_scp_ecg,
    "edf": write_edf,
}
