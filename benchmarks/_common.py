"""What every benchmark script shares: machine facts under one set of keys, atomic result writing,
and the random-weight model bundle the inference benchmarks time.

Imported as `from _common import ...`: a benchmark runs as `python benchmarks/NAME.py`, which puts
this folder on sys.path; tests import it through pytest's `pythonpath`.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ecgkt.atomic_files import write_text_atomically

__all__ = ["embed_store", "machine_facts", "random_bundle", "write_result"]


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_facts() -> dict[str, Any]:
    """The facts a benchmark result is recorded with, always under these keys."""
    import numpy as np
    import torch

    return {
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "load_average": [round(value, 2) for value in os.getloadavg()],
    }


def write_result(path: Path, payload: str | dict[str, Any]) -> Path:
    """Write a result (Markdown text, or JSON for a dict) atomically: a reader never sees half a file."""
    text = payload if isinstance(payload, str) else json.dumps(payload, indent=2, default=str) + "\n"
    return write_text_atomically(path, text)


def random_bundle(
    path: Path,
    *,
    encoder: Any,
    diagnosis_labels: Sequence[str],
    lab_labels: Sequence[str],
    head_hidden: Sequence[int],
    note: str | None = None,
) -> Path:
    """A bundle with random weights (torch seed 0): inference cost does not depend on the weights."""
    import torch

    from ecgkt.bundle import BundleManifest, EcgOnlyModel, save_bundle
    from ecgkt.models.config import HeadConfig

    torch.manual_seed(0)
    manifest = BundleManifest(
        encoder=encoder,
        diagnosis_head=HeadConfig(hidden=list(head_hidden), dropout=0.2),
        lab_head=HeadConfig(hidden=list(head_hidden), dropout=0.2),
        diagnosis_labels=list(diagnosis_labels),
        lab_labels=list(lab_labels),
        training={"note": note} if note else {},
    )
    return save_bundle(path, EcgOnlyModel.from_manifest(manifest).eval(), manifest, overwrite=True)


def embed_store(encoder: Any, store: Any, window: int, n_windows: int, batch: int = 256) -> Any:
    """Mean encoder embedding (N, D) over each record's first `n_windows` windows of `window` samples.

    The evaluation-time view of a record (non-overlapping windows, averaged), for linear probes.
    """
    import numpy as np
    import torch

    encoder.eval()
    chunks = []
    with torch.no_grad():
        for start in range(0, len(store), batch):
            x = torch.from_numpy(np.array(store.signals[start : start + batch, :, : window * n_windows]))
            windows = x.reshape(x.shape[0], 12, n_windows, window).permute(0, 2, 1, 3).flatten(0, 1)
            chunks.append(encoder(windows).view(x.shape[0], n_windows, -1).mean(1).numpy())
    return np.concatenate(chunks).astype(np.float32)
