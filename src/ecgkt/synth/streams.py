"""Named, independent random streams derived from one seed.

Every part of the generator draws from its own stream (`stream(seed, "labs")`), so adding draws in
one module never shifts the numbers of another, and every ECG record gets its own stream keyed by
its index, so the output does not depend on how records are spread over worker processes.
"""

from __future__ import annotations

import zlib

import numpy as np

_RECORD_STREAM = 0x5EC0_4D


def _key(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


def stream(seed: int, name: str) -> np.random.Generator:
    """The generator for one named purpose ("patients", "labs", …) of a cohort with `seed`."""
    return np.random.default_rng(np.random.SeedSequence([seed, _key(name)]))


def record_stream(seed: int, record_index: int) -> np.random.Generator:
    """The generator that renders ECG record number `record_index` (independent of worker layout)."""
    return np.random.default_rng(np.random.SeedSequence([seed, _RECORD_STREAM, record_index]))
