"""How fast `render_ecg` makes a 10 s, 12-lead, 500 Hz record, against references timed in the same run.

Why: `ecgkt synth` must write >= 100 records/s on 2 cores *including* WFDB writing, so one render
may take only a few milliseconds. Absolute times depend on the machine (and on whoever else is
using it), so the result is also given as ratios to operations every machine does at its own speed:
drawing a (12, 5000) standard-normal array, and writing one record with `wfdb.wrsamp` (plus the
plain int16 `.dat` write the cohort writer can use instead).

Run: `.venv/bin/python benchmarks/waveform_speed.py [--records 600]`; writes
benchmarks/results/waveform_speed.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Literal

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core, as in one cohort-writer worker; set before numpy loads

import numpy as np  # noqa: E402

from ecgkt.atomic_files import write_text_atomically  # noqa: E402
from ecgkt.mimic.layout import ECG_ADC_GAIN, ECG_NUM_SAMPLES, ECG_SAMPLING_RATE_HZ, MIMIC_LEAD_ORDER  # noqa: E402
from ecgkt.synth.ecg_params import EcgParameters, NoiseParameters  # noqa: E402
from ecgkt.synth.waveform import render_ecg  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def parameter_mix(n: int, rng: np.random.Generator) -> list[EcgParameters]:
    """A cohort-like mix: mostly sinus with varied rates and intervals, plus AF, blocks, ischaemia,
    LVH, electrolyte changes, ectopy and the occasional defective recording."""
    out: list[EcgParameters] = []
    for _ in range(n):
        u = rng.random()
        p = EcgParameters(
            heart_rate_bpm=float(np.clip(rng.normal(82, 18), 40, 160)),
            pr_ms=float(np.clip(rng.normal(160, 20), 110, 260)),
            qrs_ms=float(np.clip(rng.normal(90, 8), 70, 118)),
            qtc_ms=float(np.clip(rng.normal(420, 25), 340, 520)),
            qrs_axis_deg=float(rng.normal(40, 30)),
            t_amplitude_scale=float(np.exp(rng.normal(0, 0.25))),
            ectopic_rate=0.05 if rng.random() < 0.2 else 0.0,
            noise=NoiseParameters(
                baseline_wander_mv=float(0.05 * np.exp(rng.normal(0, 0.6))),
                muscle_mv=float(0.01 * np.exp(rng.normal(0, 0.5))),
                electrode_artifact=bool(rng.random() < 0.04),
                nan_stretch=bool(rng.random() < 0.01),
                flat_lead=bool(rng.random() < 0.005),
            ),
        )
        if u < 0.12:
            p = replace(p, rhythm="atrial_fibrillation", heart_rate_bpm=float(rng.uniform(70, 140)))
        elif u < 0.17:
            p = replace(p, bundle_branch_block="lbbb", qrs_ms=148.0)
        elif u < 0.22:
            p = replace(p, bundle_branch_block="rbbb", qrs_ms=134.0)
        elif u < 0.30:
            territories: tuple[Literal["anterior", "inferior", "lateral"], ...] = ("anterior", "inferior", "lateral")
            territory = territories[int(rng.integers(3))]
            p = replace(p, ischaemia_territory=territory, ischaemia_st_mv=float(rng.uniform(-0.2, 0.35)),
                        t_inversion=bool(rng.random() < 0.4), pathological_q=bool(rng.random() < 0.3))
        elif u < 0.38:
            p = replace(p, lvh_voltage_scale=float(rng.uniform(1.4, 1.9)), lvh_strain=bool(rng.random() < 0.45))
        elif u < 0.45:
            p = replace(p, t_amplitude_scale=0.35, u_amplitude_mv=0.15, st_deviation_mv=-0.08)
        out.append(p)
    return out


def per_call_seconds(fn: Callable[[], object], calls: int, repeats: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) per call, each the median over `repeats` batches.

    CPU time (process_time) is what one worker core spends; wall time additionally carries the
    waiting caused by other processes on a shared machine.
    """
    fn()  # warm up caches and lazy imports
    cpu, wall = [], []
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        for _ in range(calls):
            fn()
        cpu.append((time.process_time() - c0) / calls)
        wall.append((time.perf_counter() - w0) / calls)
    return statistics.median(cpu), statistics.median(wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=600, help="records per timing batch")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.records < 10 or args.repeats < 1:
        parser.error("--records must be >= 10 and --repeats >= 1")

    params = parameter_mix(args.records, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    cursor = iter(range(10**9))

    def render_one() -> object:
        return render_ecg(params[next(cursor) % len(params)], rng)

    render_s, render_wall = per_call_seconds(render_one, args.records, args.repeats)
    randn_s, randn_wall = per_call_seconds(lambda: rng.standard_normal((12, ECG_NUM_SAMPLES)),
                                           args.records, args.repeats)

    import wfdb

    signal, _ = render_ecg(EcgParameters(), np.random.default_rng(2))
    with tempfile.TemporaryDirectory() as tmp:
        def wrsamp_one() -> None:
            wfdb.wrsamp("rec", fs=ECG_SAMPLING_RATE_HZ, units=["mV"] * 12, sig_name=list(MIMIC_LEAD_ORDER),
                        p_signal=signal.T.astype(np.float64), fmt=["16"] * 12, adc_gain=[ECG_ADC_GAIN] * 12,
                        baseline=[0] * 12, write_dir=tmp)

        def raw_write_one() -> None:
            digital = np.round(np.nan_to_num(signal, nan=-32768 / ECG_ADC_GAIN) * ECG_ADC_GAIN)
            np.clip(digital, -32768, 32767).astype("<i2").T.tofile(Path(tmp) / "raw.dat")

        wrsamp_s, wrsamp_wall = per_call_seconds(wrsamp_one, max(50, args.records // 6), args.repeats)
        raw_s, raw_wall = per_call_seconds(raw_write_one, args.records, args.repeats)

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() \
        else platform.processor()
    result = {
        "records_per_batch": args.records, "repeats": args.repeats,
        "render_ms": render_s * 1e3, "render_wall_ms": render_wall * 1e3,
        "render_records_per_s_one_core": 1.0 / render_s,
        "randn_12x5000_ms": randn_s * 1e3, "randn_12x5000_wall_ms": randn_wall * 1e3,
        "render_over_randn": render_s / randn_s,
        "wfdb_wrsamp_ms": wrsamp_s * 1e3, "wfdb_wrsamp_wall_ms": wrsamp_wall * 1e3,
        "render_over_wrsamp": render_s / wrsamp_s,
        "raw_int16_write_ms": raw_s * 1e3, "raw_int16_write_wall_ms": raw_wall * 1e3,
        "projected_records_per_s_2_cores_with_wrsamp": 2.0 / (render_s + wrsamp_s),
        "projected_records_per_s_2_cores_with_raw_write": 2.0 / (render_s + raw_s),
        "cpu": cpu, "python": platform.python_version(), "numpy": np.__version__,
        "load_average_at_end": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_text_atomically(RESULTS / "waveform_speed.json", json.dumps(result, indent=2) + "\n")
    write_text_atomically(RESULTS / "waveform_speed.md", _markdown(result))
    print(_markdown(result))


def _markdown(r: dict[str, object]) -> str:
    def f(key: str, digits: int = 2) -> str:
        value = r[key]
        assert isinstance(value, float)
        return f"{value:.{digits}f}"

    def row(label: str, key: str, ratio: str) -> str:
        return f"| {label} | {f(key + '_ms', 3)} | {f(key + '_wall_ms', 3)} | {ratio} |"

    return f"""# Waveform renderer speed

`render_ecg` on one core: a 10 s, 12-lead, 500 Hz record (dipole model, noise, median-beat
measurements and statements) from a cohort-like parameter mix (sinus, AF, LBBB/RBBB, ischaemia,
LVH, hypokalaemia, ectopy, rare defects). Each figure is the median over {r["repeats"]} batches
of {r["records_per_batch"]} calls; references are timed in the same run. CPU time is what one
worker core spends; wall time also includes waiting for other processes on a shared machine.

| operation | CPU ms per record | wall ms per record | render / this (CPU) |
|---|---:|---:|---:|
{row("`render_ecg`", "render", "1")}
{row("`rng.standard_normal((12, 5000))`", "randn_12x5000", f("render_over_randn", 2))}
{row("`wfdb.wrsamp` one record (format 16)", "wfdb_wrsamp", f("render_over_wrsamp", 3))}
{row("raw int16 `.dat` write", "raw_int16_write", "")}

- Render throughput on one core (CPU time): **{f("render_records_per_s_one_core", 0)} records/s**.
- Projected cohort throughput on 2 cores, render + write only (tables and process overhead
  excluded): {f("projected_records_per_s_2_cores_with_wrsamp", 0)} records/s with `wfdb.wrsamp`,
  {f("projected_records_per_s_2_cores_with_raw_write", 0)} records/s with a raw int16 write.

Conditions: {r["cpu"]}, Python {r["python"]}, NumPy {r["numpy"]}, BLAS/OpenMP threads = 1; the
machine is shared, load average at the end {r["load_average_at_end"]} (1/5/15 min).
"""


if __name__ == "__main__":
    main()
