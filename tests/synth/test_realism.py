"""Published realism targets."""

from __future__ import annotations

from ecgkt.synth.realism import PUBLISHED


def test_every_target_has_a_valid_range_and_a_source() -> None:
    for name, target in PUBLISHED.items():
        lo, hi = target.oracle_range
        assert 0.0 <= lo < hi <= 1.0, name
        assert target.figure and target.source, name
