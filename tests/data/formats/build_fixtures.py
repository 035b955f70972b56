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


if __name__ == "__main__":
    muse_8_leads_250hz()
    aecg_12_leads_1000hz_mv()
    cardiosoft_12_leads_500hz()
