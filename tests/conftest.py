"""Shared fixtures. Tests run on tiny synthetic data generated here; nothing is downloaded."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

from threads import one_thread  # noqa: F401  (registers the fixture for every test)
