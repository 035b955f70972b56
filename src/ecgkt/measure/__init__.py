"""ECG measurements every ECG program shows: heart rate, rhythm regularity, PR, QRS, QT, QTc, axes."""

from ecgkt.measure.intervals import Measurements, measure_ecg, measurements_line

__all__ = ["Measurements", "measure_ecg", "measurements_line"]
