"""Bounds on what an input may ask ecgkt to compute, checked before anything is allocated.

Why these numbers (issue 18: one 80-byte request with `sampling_rate_hz: 1e-5` asked for a 9 GB
resampling):
- sampling rate 50-10,000 Hz: diagnostic ECGs are recorded at 250-1,000 Hz (AHA recommends >= 500 Hz
  for diagnostic bandwidth, Kligfield et al., Circulation 2007;115:1306); 50 Hz is below anything a
  12-lead device stores and 10 kHz covers high-resolution research recorders. Outside this range
  the rate is almost certainly a unit mistake (kHz, period in seconds) and is refused, not guessed.
- at least one 2.5 s window of raw signal (`WINDOW_SECONDS`): the model cannot see less.
- at most `MAX_RECORD_SECONDS` (1 h) and `MAX_SAMPLES_PER_LEAD` raw samples: inference already
  samples at most 120 windows evenly (5 min of signal), so longer inputs only cost memory; a
  Holter file is cut by the user, not by a silent allocation of gigabytes.
- `.npz` archives may expand to at most `MAX_DECOMPRESSED_BYTES`, checked from the zip directory
  and every member's `.npy` header before any array is read (the CLI and the service alike).
"""

from __future__ import annotations

__all__ = [
    "MAX_DECOMPRESSED_BYTES",
    "MAX_JSON_DIGITS",
    "MAX_NPZ_MEMBERS",
    "MAX_RECORD_SECONDS",
    "MAX_SAMPLES_PER_LEAD",
    "MAX_SAMPLING_RATE_HZ",
    "MAX_SIGNALS",
    "MIN_SAMPLING_RATE_HZ",
]

MIN_SAMPLING_RATE_HZ = 50.0
MAX_SAMPLING_RATE_HZ = 10_000.0
MAX_RECORD_SECONDS = 3600.0
# 1 h at 1 kHz; 12 leads x 3.6 M x 8 bytes = 346 MB in float64, the largest array a reader may build.
MAX_SAMPLES_PER_LEAD = 3_600_000
MAX_SIGNALS = 64
MAX_NPZ_MEMBERS = 8
MAX_DECOMPRESSED_BYTES = 512 * 1024 * 1024
# Longest number literal accepted in a JSON ECG document (a float64 needs at most 17 significant
# digits plus exponent; Python's int() refuses > 4,300 digits with a ValueError).
MAX_JSON_DIGITS = 40
