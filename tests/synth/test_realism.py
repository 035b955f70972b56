"""Published realism targets and the Table 1 ceilings loader."""

from __future__ import annotations

import json
from pathlib import Path

from ecgkt.synth.realism import PUBLISHED, load_ceilings


def test_load_ceilings_reads_the_file_or_returns_none(tmp_path: Path) -> None:
    assert load_ceilings(tmp_path / "absent.json") is None
    path = tmp_path / "ceilings.json"
    path.write_text(json.dumps({"macro_auroc": {"ecg_params+demographics": 0.88, "true_tabular": 0.89}}))
    data = load_ceilings(path)
    assert data is not None and data["macro_auroc"]["true_tabular"] == 0.89


def test_every_target_has_a_valid_range_and_a_source() -> None:
    for name, target in PUBLISHED.items():
        lo, hi = target.oracle_range
        assert 0.0 <= lo < hi <= 1.0, name
        assert target.figure and target.source, name
