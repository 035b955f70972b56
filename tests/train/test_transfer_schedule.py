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


def test_route_config_reproduces_the_je_arms_settings_and_refuses_other_arms() -> None:
    from ecgkt.config import load_config
    from ecgkt.train.transfer.study import Unit, route_config, unit_run_config

    config = StudyConfig.model_validate({"preset": "smoke", "barlow": {"width": 64}})
    route = load_config(config.preset, overrides=route_config(config, "je-barlow", n_labelled=5000))
    pretrain = unit_run_config(config, Unit("pretrain", "je-barlow", 0), 0, None)
    finetune = unit_run_config(config, Unit("arm", "je-barlow", 0, 1.0), 0, 5000)
    assert route.pretrain == pretrain.pretrain and route.pretrain.barlow_lambda == 1 / 64
    assert route.finetune == finetune.finetune and route.baseline == finetune.baseline
    with pytest.raises(StudyError, match="not a joint-embedding arm"):
        route_config(config, "regft", n_labelled=5000)


def test_best_route_is_the_one_no_other_beats_on_shared_replicates() -> None:
    from ecgkt.train.transfer.report import best_arm

    cells = {  # a beats b on their shared replicate 0; b's pooled mean is lifted by a lucky replicate 3
        "a": {"vs_signal": {"replicates": [0, 1, 2], "per_replicate": [0.02, 0.0, 0.0], "delta": 0.0067}},
        "b": {"vs_signal": {"replicates": [0, 3], "per_replicate": [0.01, 0.05], "delta": 0.03}},
    }
    assert best_arm(cells, ["a", "b"]) == "a"
    # c shares replicates 1 and 2 with a and is ahead there, though behind a's pooled mean on 0
    cells["c"] = {"vs_signal": {"replicates": [1, 2], "per_replicate": [0.004, 0.002], "delta": 0.003}}
    assert best_arm(cells, ["a", "b", "c"]) == "c"
    # a cycle (nobody unbeaten) falls back to the largest pooled Δ
    cycle = {
        "x": {"vs_signal": {"replicates": [0, 1], "per_replicate": [0.02, 0.0], "delta": 0.01}},
        "y": {"vs_signal": {"replicates": [1, 2], "per_replicate": [0.01, 0.0], "delta": 0.005}},
        "z": {"vs_signal": {"replicates": [0, 2], "per_replicate": [0.0, 0.01], "delta": 0.005}},
    }
    assert best_arm(cycle, ["x", "y", "z"]) == "x"
