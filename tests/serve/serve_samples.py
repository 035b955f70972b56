"""Helpers that build upload bodies for the service tests (imported by the test modules)."""

from __future__ import annotations

import io
import json

import numpy as np

from ecgkt.signals.leads import CANONICAL_LEADS


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def json_document(signal: np.ndarray, rate: float = 500, leads: list[str] | None = None) -> dict[str, object]:
    return {
        "signal": np.round(signal, 4).tolist(),
        "sampling_rate_hz": rate,
        "leads": list(CANONICAL_LEADS) if leads is None else leads,
        "units": "mV",
    }


def dumps(document: object) -> bytes:
    return json.dumps(document).encode()


def assert_same_prediction(got: dict[str, object], expected: dict[str, object], tolerance: float = 1e-6) -> None:
    """Two PredictionResult JSONs agree: same labels and order-independent probabilities within tolerance."""
    for key in ("n_windows", "ecgkt_version"):
        assert got[key] == expected[key], key
    for section, name in (("diagnoses", "code"), ("labs", "label")):
        got_items = {item[name]: item for item in got[section]}  # type: ignore[attr-defined]
        expected_items = {item[name]: item for item in expected[section]}  # type: ignore[attr-defined]
        assert got_items.keys() == expected_items.keys()
        for label, item in expected_items.items():
            assert abs(got_items[label]["probability"] - item["probability"]) <= tolerance, (section, label)
            assert got_items[label]["positive"] == item["positive"], (section, label)
