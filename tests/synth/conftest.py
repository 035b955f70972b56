"""Fixtures for the synthetic-cohort tests: one tiny cohort on disk, one larger in-memory simulation."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecgkt.synth.cohort import CohortSummary, generate_cohort
from ecgkt.synth.simulate import Simulation, simulate

TINY_PATIENTS = 40
TINY_SEED = 7


@pytest.fixture(scope="session")
def tiny_request() -> tuple[int, int]:
    """(patients, seed) of the tiny cohort, for tests that regenerate it."""
    return TINY_PATIENTS, TINY_SEED


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CohortSummary]:
    """A 40-patient cohort written once per session (single worker, no progress bar)."""
    out = tmp_path_factory.mktemp("synth") / "cohort"
    summary = generate_cohort(out, TINY_PATIENTS, TINY_SEED, workers=1, show_progress=False)
    return out, summary


@pytest.fixture(scope="session")
def large_simulation() -> Simulation:
    """3000 patients simulated in memory (no files): enough visits to see rare physiology."""
    return simulate(3000, 11)
