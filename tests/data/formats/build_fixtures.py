"""Hand-built fixture files written from each format's published layout with plain string templates.

Independent of `ecgkt.convert.writers`: the content is analytic (lead k sample n =
round(AMP[k] * sin(2π · 1.5 · n / fs)) integer counts), so tests can check readers against the
formula. Run once: `python tests/data/formats/build_fixtures.py` (the outputs are committed).
"""

from __future__ import annotations

import base64
import math
import struct
from pathlib import Path

HERE = Path(__file__).parent
AMP = [100, 150, 50, -125, 25, 100, 60, 300, 500, 700, 600, 400]
TWELVE = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


def counts(k: int, n: int, fs: float) -> list[int]:
    return [round(AMP[k] * math.sin(2 * math.pi * 1.5 * i / fs)) for i in range(n)]


def muse_8_leads_250hz() -> None:
    """GE MUSE: 8 leads (I, II, V1–V6), 250 Hz, 10 s, 1 µV per bit, a single Waveform block."""
    fs, n = 250, 2500
    lead_blocks = []
    for name in ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]:
        k = TWELVE.index(name)
        data = base64.b64encode(struct.pack(f"<{n}h", *counts(k, n, fs))).decode()
        lead_blocks.append(
            f"<LeadData><LeadByteCountTotal>{2 * n}</LeadByteCountTotal><LeadTimeOffset>0</LeadTimeOffset>"
            f"<LeadSampleCountTotal>{n}</LeadSampleCountTotal><LeadAmplitudeUnitsPerBit>1</LeadAmplitudeUnitsPerBit>"
            "<LeadAmplitudeUnits>MICROVOLTS</LeadAmplitudeUnits><LeadHighLimit>32767</LeadHighLimit>"
            f"<LeadLowLimit>-32768</LeadLowLimit><LeadID>{name}</LeadID><LeadOffsetFirstSample>0</LeadOffsetFirstSample>"
            "<FirstSampleBaseline>0</FirstSampleBaseline><LeadSampleSize>2</LeadSampleSize><LeadOff>FALSE</LeadOff>"
            f"<BaselineSway>FALSE</BaselineSway><WaveFormData>{data}</WaveFormData></LeadData>"
        )
    text = (
        '<?xml version="1.0" encoding="ISO-8859-1"?>\n<!DOCTYPE RestingECG SYSTEM "restecg.dtd">\n'
        "<RestingECG><MuseInfo><MuseVersion>8.0.2.10132</MuseVersion></MuseInfo>"
        "<RestingECGMeasurements><VentricularRate>90</VentricularRate><PRInterval>160</PRInterval>"
        "<QRSDuration>88</QRSDuration><QTInterval>360</QTInterval><QTCorrected>440</QTCorrected>"
        "<PAxis>50</PAxis><RAxis>40</RAxis><TAxis>30</TAxis></RestingECGMeasurements>"
        "<Waveform><WaveformType>Rhythm</WaveformType><WaveformStartTime>0</WaveformStartTime>"
        "<NumberofLeads>8</NumberofLeads><SampleType>CONTINUOUS_SAMPLES</SampleType>"
        "<SampleBase>250</SampleBase><SampleExponent>0</SampleExponent>" + "".join(lead_blocks)
        + "</Waveform></RestingECG>\n"
    )
    (HERE / "muse_8lead_250hz.xml").write_text(text, encoding="iso-8859-1")


def aecg_12_leads_1000hz_mv() -> None:
    """HL7 aECG: 12 leads, 1000 Hz (increment 1 ms), 2.6 s, scale 0.001 mV, origin 0.01 mV."""
    fs, n = 1000, 2600
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n<AnnotatedECG xmlns="urn:hl7-org:v3" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><id root="1.2.3"/><code code="93000" '
        'codeSystem="2.16.840.1.113883.6.12"/><component><series><code code="RHYTHM" '
        'codeSystem="2.16.840.1.113883.5.4"/><component><sequenceSet><component><sequence>'
        '<code code="TIME_ABSOLUTE" codeSystem="2.16.840.1.113883.5.4"/><value xsi:type="GLIST_TS">'
        '<head value="20260101120000.000"/><increment value="1" unit="ms"/></value></sequence></component>'
    ]
    for k, name in enumerate(TWELVE):
        code = name.upper() if name.startswith("aV") else name
        digits = " ".join(str(v) for v in counts(k, n, fs))
        parts.append(
            f'<component><sequence><code code="MDC_ECG_LEAD_{code}" codeSystem="2.16.840.1.113883.6.24"/>'
            f'<value xsi:type="SLIST_PQ"><origin value="0.01" unit="mV"/><scale value="0.001" unit="mV"/>'
            f"<digits>{digits}</digits></value></sequence></component>"
        )
    parts.append("</sequenceSet></component></series></component></AnnotatedECG>\n")
    (HERE / "aecg_12lead_1000hz.xml").write_text("".join(parts), encoding="utf-8")


def cardiosoft_12_leads_500hz() -> None:
    """GE CardioSoft: StripData, 500 Hz, 3 s, 5 µV per LSB, comma-separated integers."""
    fs, n = 500, 1500
    blocks = "".join(
        f'<WaveformData lead="{name}">{",".join(str(v) for v in counts(k, n, fs))}</WaveformData>'
        for k, name in enumerate(TWELVE)
    )
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<CardiologyXML><ObservationType>RestECG</ObservationType>'
        '<StripData><NumberOfLeads>12</NumberOfLeads><SampleRate units="Hz">500</SampleRate>'
        f'<ChannelSampleCountTotal>{n}</ChannelSampleCountTotal><Resolution units="uVperLsb">5</Resolution>'
        f"{blocks}</StripData></CardiologyXML>\n"
    )
    (HERE / "cardiosoft_12lead_500hz.xml").write_text(text, encoding="utf-8")


def scp_8_leads_first_difference() -> None:
    """SCP-ECG (EN 1064 layout): 8 leads (ids 1, 2, 3–8 = I, II, V1–V6), 250 Hz (4000 µs), AVM 2500 nV,
    first-difference encoding, no Huffman (no Section 2), 3 s. Sections are laid out by hand here:
    record CRC + length, Section 0 pointer table, Sections 1, 3 and 6, each with its CRC-CCITT."""
    import binascii

    fs, n = 250, 750
    ids = [1, 2, 3, 4, 5, 6, 7, 8]
    names = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]

    def section(number: int, body: bytes, reserved: bytes = bytes(6)) -> bytes:
        if len(body) % 2:
            body += bytes(1)
        rest = number.to_bytes(2, "little") + (16 + len(body)).to_bytes(4, "little") + bytes([21, 21]) + reserved
        rest += body
        return binascii.crc_hqx(rest, 0xFFFF).to_bytes(2, "little") + rest

    s1 = section(1, bytes([255, 0, 0]))
    s3_body = bytes([8, 0b01000100])  # 8 leads, all simultaneous
    for lead_id in ids:
        s3_body += (1).to_bytes(4, "little") + n.to_bytes(4, "little") + bytes([lead_id])
    s3 = section(3, s3_body)
    data = b""
    for name in names:
        x = counts(TWELVE.index(name), n, fs)
        diffs = [x[0]] + [x[i] - x[i - 1] for i in range(1, n)]
        data += struct.pack(f"<{n}h", *diffs)
    s6_body = struct.pack("<HHBB", 2500, 4000, 1, 0) + struct.pack("<8H", *([2 * n] * 8)) + data
    s6 = section(6, s6_body)
    start0 = 7  # 1-based byte index of section 0 (after CRC and length)
    s0_len = 16 + 10 * 12
    index = start0 + s0_len
    table = b""
    for number in range(12):
        if number == 0:
            table += struct.pack("<HII", 0, s0_len, start0)
        elif number in (1, 3, 6):
            block = {1: s1, 3: s3, 6: s6}[number]
            table += struct.pack("<HII", number, len(block), index)
            index += len(block)
        else:
            table += struct.pack("<HII", number, 0, 0)
    s0 = section(0, table, b"SCPECG")
    record = s0 + s1 + s3 + s6
    rest = (6 + len(record)).to_bytes(4, "little") + record
    (HERE / "scp_8lead_250hz_diff1.scp").write_bytes(binascii.crc_hqx(rest, 0xFFFF).to_bytes(2, "little") + rest)


if __name__ == "__main__":
    scp_8_leads_first_difference()
    muse_8_leads_250hz()
    aecg_12_leads_1000hz_mv()
    cardiosoft_12_leads_500hz()
