"""Canonical lead order and lead-name aliases.

ecgkt stores and models leads in the conventional order below. MIMIC-IV-ECG files put aVF before
aVL, and other vendors spell leads differently ("Lead II", "AVR", "v1"), so leads are always matched
by normalised name, never by position.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ecgkt.errors import UserError

CANONICAL_LEADS: tuple[str, ...] = (
    "I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6",
)

_ALIASES: dict[str, str] = {
    "1": "I", "2": "II", "3": "III", "DI": "I", "DII": "II", "DIII": "III",
    "AVR": "aVR", "AVL": "aVL", "AVF": "aVF", "-AVR": "-aVR",
}


class LeadError(UserError, ValueError):
    """Lead names that cannot be mapped onto the 12 standard leads."""


def normalise_lead_name(name: str) -> str:
    """Map a vendor's lead label ("Lead II", "avr", "V 1", "MDC_ECG_LEAD_AVF") to the canonical name."""
    text = name.strip().upper()
    # DICOM code meanings carry qualifiers: "Lead I (Einthoven)", "Lead aVR (Goldberger)".
    text = re.sub(r"\([^)]*\)", "", text).strip()
    text = re.sub(r"^(MDC_ECG_LEAD_|LEAD[\s_]*)", "", text)
    text = re.sub(r"[\s_]+", "", text)
    if text.startswith("-") and text != "-AVR":  # "LEAD-II": a separator, not a sign
        text = text[1:]
    if text in _ALIASES:
        return _ALIASES[text]
    if re.fullmatch(r"V[1-6]", text):
        return text
    if text in {"I", "II", "III"}:
        return text
    return name.strip()


def lead_permutation(names: Sequence[str], source: str = "input") -> list[int]:
    """Indices that reorder `names` into CANONICAL_LEADS; raises LeadError naming what is missing."""
    normalised = [normalise_lead_name(n) for n in names]
    duplicates = sorted({n for n in normalised if normalised.count(n) > 1 and n in CANONICAL_LEADS})
    if duplicates:
        raise LeadError(f"{source}: lead(s) {', '.join(duplicates)} appear more than once in {list(names)}")
    missing = [lead for lead in CANONICAL_LEADS if lead not in normalised]
    if missing:
        raise LeadError(
            f"{source}: missing lead(s) {', '.join(missing)}; found {list(names)} "
            f"(expected the 12 standard leads {', '.join(CANONICAL_LEADS)})"
        )
    return [normalised.index(lead) for lead in CANONICAL_LEADS]
