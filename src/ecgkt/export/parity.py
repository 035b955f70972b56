"""Real model inputs for parity checks: synthetic ECGs stored as MIMIC WFDB records, read back.

Why not random tensors: a random normal input exercises the network far outside the range it sees
(clipped ±3 mV ECG morphology), and it skips the reader and preprocessing path. Here each record is
rendered by the synthetic cohort's dipole ECG model, written exactly as MIMIC-IV-ECG stores it
(format 16, 200 adu/mV, 500 Hz, aVF before aVL) and read back with `read_ecg` + `prepare_windows`,
so the windows are what `ecgkt predict` and the service feed the model. The same writer gives the
service tests and the load benchmark realistic WFDB uploads.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ecgkt.synth.ecg_params import EcgParameters

# A spread of rhythms and morphologies so the parity check covers more than one regime.
PARITY_ECGS: tuple[EcgParameters, ...] = (
    EcgParameters(),
    EcgParameters(heart_rate_bpm=118.0, bundle_branch_block="lbbb", qrs_ms=150.0),
    EcgParameters(heart_rate_bpm=96.0, rhythm="atrial_fibrillation"),
    EcgParameters(heart_rate_bpm=58.0, t_amplitude_scale=2.0, t_width_scale=0.7, pr_ms=230.0),
    EcgParameters(ischaemia_territory="inferior", ischaemia_st_mv=0.25, pathological_q=True),
)


def write_synthetic_wfdb(
    folder: Path, params: EcgParameters, *, record_name: str = "ecg", seed: int = 0, seconds: float = 10.0
) -> Path:
    """Render one ECG and write `folder/record_name.hea|.dat` in MIMIC-IV-ECG's format; returns the .hea."""
    import wfdb

    from ecgkt.mimic.layout import ECG_ADC_GAIN, ECG_FORMAT, ECG_SAMPLING_RATE_HZ, MIMIC_LEAD_ORDER
    from ecgkt.synth.waveform import render_ecg

    fs = ECG_SAMPLING_RATE_HZ
    signal, _ = render_ecg(params, np.random.default_rng(seed), fs=fs, n_samples=round(seconds * fs))
    folder.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(
        record_name,
        fs=fs,
        units=["mV"] * len(MIMIC_LEAD_ORDER),
        sig_name=list(MIMIC_LEAD_ORDER),
        p_signal=np.asarray(signal, dtype=np.float64).T,
        fmt=[ECG_FORMAT] * len(MIMIC_LEAD_ORDER),
        adc_gain=[ECG_ADC_GAIN] * len(MIMIC_LEAD_ORDER),
        baseline=[0] * len(MIMIC_LEAD_ORDER),
        write_dir=str(folder),
    )
    return folder / f"{record_name}.hea"


def parity_windows(
    inputs: Sequence[Path] | None, *, window_samples: int, seed: int = 0
) -> tuple[NDArray[np.float32], int]:
    """(windows (W, 12, window_samples), number of records) from `inputs`, or from synthetic records."""
    import tempfile

    from ecgkt.signals.readers import iter_inputs, prepare_windows, read_ecg

    with tempfile.TemporaryDirectory(prefix="ecgkt-parity-") as scratch:
        if inputs:
            paths = iter_inputs(list(inputs))
        else:
            paths = [
                write_synthetic_wfdb(Path(scratch), params, record_name=f"parity{index}", seed=seed + index)
                for index, params in enumerate(PARITY_ECGS)
            ]
        stacks = [prepare_windows(read_ecg(path), window=window_samples) for path in paths]
    return np.concatenate(stacks, axis=0), len(stacks)
