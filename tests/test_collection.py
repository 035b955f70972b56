"""Every test file under tests/ is collected by the default pytest run.

pytest skips folders by name (`norecursedirs`: `build`, `dist`, `.*`, `venv`, …), so a test folder named
after one of them silently drops out of CI. This test asks pytest itself which files it collects with the
project's own configuration and fails, naming them, for any `test_*.py` it leaves out.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_test_file_is_collected() -> None:
    on_disk = {p.relative_to(ROOT).as_posix() for p in (ROOT / "tests").rglob("test_*.py")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "slow or not slow", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    collected = {line.split("::", 1)[0] for line in result.stdout.splitlines() if line.startswith("tests/")}
    missing = sorted(on_disk - collected)
    assert not missing, f"test files the default pytest run never collects: {missing}"
