"""The one preprocessing contract: store, bundle and engine share `PreprocessSpec`, and old JSON still reads."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ecgkt.bundle import BundlePreprocessing
from ecgkt.signals.leads import CANONICAL_LEADS
from ecgkt.signals.preprocess import CLIP_MV, RECORD_SECONDS, TARGET_RATE_HZ, PreprocessSpec
from ecgkt.signals.windows import WINDOW_SAMPLES
from ecgkt.store import PreprocessingSpec


def test_store_and_bundle_use_the_one_model() -> None:
    assert PreprocessingSpec is PreprocessSpec and BundlePreprocessing is PreprocessSpec
    spec = PreprocessSpec()
    assert (spec.sampling_rate_hz, spec.record_seconds, spec.clip_mv) == (TARGET_RATE_HZ, RECORD_SECONDS, CLIP_MV)
    assert spec.window_samples == WINDOW_SAMPLES and spec.num_samples == 1000


def test_an_earlier_store_manifest_reads_unchanged() -> None:
    old = {
        "sampling_rate_hz": 100,
        "num_samples": 1000,
        "clip_mv": 3.0,
        "leads": list(CANONICAL_LEADS),
        "source_sampling_rate_hz": 500,
    }
    spec = PreprocessSpec.model_validate(old)
    assert spec.record_seconds == 10.0 and spec.num_samples == 1000
    dumped = spec.model_dump()
    assert dumped["num_samples"] == 1000  # still written for readers of store manifests
    assert PreprocessSpec.model_validate(dumped) == spec


def test_an_earlier_bundle_manifest_reads_unchanged() -> None:
    old = {
        "sampling_rate_hz": 100,
        "leads": list(CANONICAL_LEADS),
        "record_seconds": 10.0,
        "window_samples": 250,
        "n_windows": 4,
        "clip_mv": 3.0,
    }
    spec = PreprocessSpec.model_validate(old)
    assert spec.num_samples == 1000 and spec.n_windows == 4


def test_inconsistent_or_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="disagrees"):
        PreprocessSpec.model_validate({"num_samples": 999, "record_seconds": 10.0})
    with pytest.raises(ValidationError):
        PreprocessSpec.model_validate({"sampling_rate_hz": 100, "bogus": 1})
