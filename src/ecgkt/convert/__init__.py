"""`ecgkt convert`: any supported ECG input -> WFDB (MIMIC-IV-ECG layout) or another supported format.

The writers (`ecgkt.convert.writers`) are independent of the readers, so converting the synthetic
cohort and reading it back is a golden test of both.
"""

from ecgkt.convert.writers import MIMIC_LEAD_ORDER, WRITERS, WriteOptions

__all__ = ["MIMIC_LEAD_ORDER", "WRITERS", "WriteOptions"]
