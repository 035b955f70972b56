"""Why `ecgkt export` rewrites the S4 convolution: accuracy and speed of the ONNX graph choices.

Three graphs of the same bundle are compared with the PyTorch model (FFT convolution) measured in the
same run, on real preprocessed windows (synthetic MIMIC-layout WFDB records read back through
`read_ecg` + `prepare_windows`; one 10 s record = 4 windows):
- "plain": `torch.onnx.export(model, dynamo=True)` of the model as trained (rfft/irfft become ONNX
  `DFT` operators); the TorchScript exporter cannot export it at all (no `aten::fft_rfft`);
- "DFT-as-matmul view, opset 17 / 18": `make_exportable` (kernel spectrum precomputed, FFT written as
  two real matrix products), exported by the TorchScript exporter (17) and by torch.export (18) —
  what `ecgkt export` writes.
Reported: max |logit difference| vs PyTorch, median latency per record on one thread (onnxruntime
intra-op threads = 1, torch threads = 1), and the ratio to PyTorch.

Run: `.venv/bin/python benchmarks/onnx_export.py [--bundle DIR]` (default: the cpu preset's
architecture with random weights); writes benchmarks/results/onnx_export.md and .json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def median_ms(run: Callable[[], object], repeats: int = 40) -> float:
    for _ in range(5):
        run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def random_cpu_bundle(folder: Path) -> Path:
    from _common import random_bundle
    from ecgkt.config import preset

    return random_bundle(
        folder / "bundle",
        encoder=preset("cpu").encoder,
        diagnosis_labels=[f"D{i:03d}" for i in range(40)],
        lab_labels=[f"L{i:03d}" for i in range(60)],
        head_hidden=[128],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=None)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)

    import onnxruntime as ort
    import torch

    from ecgkt.bundle import load_bundle
    from ecgkt.export.onnx import export_model
    from ecgkt.export.parity import parity_windows

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="ecgkt-onnx-bench-") as scratch_name:
        scratch = Path(scratch_name)
        bundle_path = args.bundle or random_cpu_bundle(scratch)
        model = load_bundle(bundle_path).model
        windows, n_records = parity_windows(None, window_samples=250)
        record = windows[:4]
        with torch.inference_mode():
            reference = [t.numpy() for t in model(torch.from_numpy(windows))]
            torch_ms = median_ms(lambda: model(torch.from_numpy(record)))

        plain = scratch / "plain.onnx"
        with torch.no_grad():
            torch.onnx.export(
                model,
                (torch.zeros(2, 12, 250),),
                str(plain),
                dynamo=True,
                opset_version=18,
                input_names=["windows"],
                output_names=["diagnosis_logits", "lab_logits"],
                dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},),
                external_data=False,
                verbose=False,
            )
        graphs = {"plain torch.export of the FFT model (ONNX DFT), opset 18": plain}
        for opset in (17, 18):
            path = scratch / f"view{opset}.onnx"
            exporter = export_model(model, path, window_samples=250, opset=opset)
            graphs[f"DFT-as-matmul view, opset {opset} ({exporter} exporter)"] = path

        rows = []
        for name, path in graphs.items():
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            outputs = session.run(None, {"windows": windows})
            difference = max(float(np.abs(o - r).max()) for o, r in zip(outputs, reference, strict=True))
            latency = median_ms(lambda session=session: session.run(None, {"windows": record}))
            rows.append(
                {
                    "graph": name,
                    "max_abs_diff": difference,
                    "ms_per_record": round(latency, 2),
                    "ratio_to_torch": round(latency / torch_ms, 2),
                    "size_mb": round(path.stat().st_size / 1e6, 2),
                }
            )
    config = load_bundle(bundle_path).manifest.encoder if args.bundle else None
    model_text = (
        f"bundle {args.bundle} (d_model {config.d_model}, {config.n_layers} layers)"
        if config is not None
        else "cpu-preset architecture (d_model 64, d_state 8, 4 bidirectional S4 layers), random weights"
    )
    payload = {
        "machine": f"{platform.machine()}, Python {platform.python_version()}, one thread, "
        f"load average {os.getloadavg()[0]:.1f}",
        "model": model_text,
        "inputs": f"{windows.shape[0]} windows from {n_records} synthetic WFDB records",
        "torch_ms_per_record": round(torch_ms, 2),
        "graphs": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "onnx_export.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = [
        "# ONNX export: graph choices against the PyTorch model",
        "",
        f"Model: {payload['model']}. Parity inputs: {payload['inputs']}. Latency: one 10 s record "
        f"(4 windows), median, {payload['machine']}. PyTorch (FFT convolution): "
        f"{torch_ms:.1f} ms per record.",
        "",
        "| graph | max abs logit diff vs PyTorch | ms / record | ÷ PyTorch | size MB |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['graph']} | {row['max_abs_diff']:.1e} | {row['ms_per_record']:.1f} | "
            f"{row['ratio_to_torch']:.2f} | {row['size_mb']:.1f} |"
        )
    lines += [
        "",
        "The TorchScript exporter cannot export the FFT model (`aten::fft_rfft` unsupported), so the plain "
        "graph exists only through torch.export. `ecgkt export` writes the DFT-as-matmul view "
        "(`ecgkt.export.exportable`). Regenerate with `.venv/bin/python benchmarks/onnx_export.py`.",
    ]
    (RESULTS / "onnx_export.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
