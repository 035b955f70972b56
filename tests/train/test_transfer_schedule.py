"""The study's unit order: dependencies before dependents, and `--priority` only reorders."""

from __future__ import annotations

import pytest

from ecgkt.train.transfer.errors import StudyError
from ecgkt.train.transfer.study import StudyConfig, prioritised, run_study, study_units

CONFIG = StudyConfig.model_validate({"preset": "smoke", "replicates": 3, "fractions": [0.2, 1.0]})


def _dependencies_first(order: list[str], units: dict[str, tuple[str, ...]]) -> bool:
    seen: set[str] = set()
    for key in order:
        if not set(units[key]) <= seen:
            return False
        seen.add(key)
    return True


@pytest.mark.parametrize(
    "priority",
    [None, ["signal+je-barlow", "regft", "multimodal+distill"], ["distill"], ["je-vicreg", "signal"]],
)
def test_priority_reorders_without_adding_dropping_or_breaking_dependencies(priority: list[str] | None) -> None:
    units = study_units(CONFIG)
    ordered = prioritised(units, priority)
    depends = {u.key: u.depends for u in units}
    assert sorted(u.key for u in ordered) == sorted(depends)
    assert _dependencies_first([u.key for u in ordered], depends)


def test_the_named_comparison_finishes_for_every_replicate_first() -> None:
    ordered = [u.key for u in prioritised(study_units(CONFIG), ["signal+je-barlow"])]
    first = ordered[: 3 * (1 + 2 * 2)]  # per replicate: one pretraining + two arms × two fractions
    assert {k.split("_")[0] for k in first} == {"pretrain-barlow", "signal", "je-barlow"}
    assert [k for k in first if k.startswith("pretrain")] == [f"pretrain-barlow_r{r}" for r in range(3)]
    # the teacher ranks with its student when the student is named
    distill_first = [u.key for u in prioritised(study_units(CONFIG), ["distill"])]
    assert distill_first[:2] == ["multimodal_f1_r0", "distill_f1_r0"]


def test_priority_naming_an_unknown_arm_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(StudyError, match="not-an-arm"):
        run_study(CONFIG, tmp_path / "store", tmp_path / "out", priority=["signal+not-an-arm"])
