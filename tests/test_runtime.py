"""The allocator tuning: applied once on glibc Linux, never when the user opts out."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from ecgkt import runtime

ON_GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def _run(code: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", **env}, check=True
    )
    return result.stdout.strip()


@pytest.mark.skipif(not ON_GLIBC, reason="mallopt is glibc-only")
def test_tuning_applies_on_glibc_and_is_idempotent() -> None:
    code = "from ecgkt.runtime import tune_allocator as t; print(t(), t())"
    assert _run(code) == "True True"


def test_opt_out_variable_disables_tuning() -> None:
    code = "from ecgkt.runtime import tune_allocator as t; print(t())"
    assert _run(code, **{runtime.OPT_OUT_VARIABLE: "0"}) == "False"


def test_thresholds_are_within_what_glibc_accepts() -> None:
    # glibc rejects an mmap threshold above 32 MiB on 64-bit: a larger value would silently not apply.
    assert runtime.MMAP_THRESHOLD_BYTES <= 32 * 1024 * 1024
    assert runtime.TRIM_THRESHOLD_BYTES >= runtime.MMAP_THRESHOLD_BYTES
