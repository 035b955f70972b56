"""Run configs: presets, YAML round trip, and clear errors for unknown keys and impossible values."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecgkt.config import ConfigError, RunConfig, load_config, preset, write_config


def test_presets_validate_and_paper_matches_the_paper() -> None:
    paper = preset("paper")
    assert (paper.encoder.d_model, paper.encoder.d_state, paper.encoder.n_layers) == (512, 8, 4)
    assert paper.data.batch_size == 32
    assert paper.finetune.optim.max_epochs == 40
    assert paper.finetune.optim.lr == pytest.approx(1e-3)
    assert paper.finetune.optim.weight_decay == pytest.approx(1e-3)
    assert paper.pretrain.barlow_lambda == pytest.approx(0.0051)
    cpu, smoke = preset("cpu"), preset("smoke")
    assert cpu.encoder.d_model < paper.encoder.d_model
    assert smoke.finetune.optim.max_epochs <= 2


def test_yaml_round_trip(tmp_path: Path) -> None:
    config = load_config("cpu", overrides={"seed": 7, "finetune": {"freeze_layers": 3}})
    path = write_config(config, tmp_path / "config.yaml")
    again = load_config(path=path)
    assert again == config
    assert again.preset == "cpu"


def test_yaml_overrides_only_the_keys_it_names(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("preset: smoke\nfinetune:\n  optim:\n    lr: 0.01\n")
    config = load_config(path=path)
    assert config.finetune.optim.lr == pytest.approx(0.01)
    assert config.finetune.optim.max_epochs == preset("smoke").finetune.optim.max_epochs
    assert config.encoder == preset("smoke").encoder


def test_unknown_key_is_an_error_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("finetune:\n  learning_rate: 0.01\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*unknown key 'finetune\.learning_rate'"):
        load_config(path=path)


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        ({"finetune": {"optim": {"lr": -1.0}}}, r"finetune\.optim\.lr"),
        ({"data": {"batch_size": 1}}, r"data\.batch_size"),
        ({"finetune": {"freeze_layers": 9}}, r"freeze_layers=9 but the encoder has only 4 layers"),
        ({"encoder": {"d_state": 7}}, r"d_state must be even"),
        ({"trainer": {"precision": "fp8"}}, r"trainer\.precision"),
        ({"ablation": {"freeze_layers": [0, 6]}}, r"ablation\.freeze_layers \[6\]"),
    ],
)
def test_impossible_values_are_rejected(overrides: dict[str, object], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        load_config("paper", overrides=overrides)


def test_unknown_preset_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown preset 'laptop'"):
        load_config("laptop")
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(path=tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("finetune: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path=broken)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(path=listing)


def test_objective_kwargs_follow_the_objective() -> None:
    config = RunConfig()
    assert config.pretrain.objective_kwargs() == {"lambda_offdiag": pytest.approx(0.0051)}
    config.pretrain.objective = "infonce"
    assert config.pretrain.objective_kwargs() == {"temperature": pytest.approx(0.1)}


def test_presets_hold_only_their_differences_from_the_defaults() -> None:
    """nanoGPT style: a preset entry equal to the class default is noise that hides what the preset changes."""
    from ecgkt.config import PRESET_OVERRIDES, RunConfig

    defaults = RunConfig().model_dump()

    def repeated(override: dict, default: dict, where: str) -> list[str]:
        found = []
        for key, value in override.items():
            if isinstance(value, dict) and isinstance(default.get(key), dict):
                found += repeated(value, default[key], f"{where}{key}.")
            elif default.get(key) == value:
                found.append(f"{where}{key}")
        return found

    for name, override in PRESET_OVERRIDES.items():
        assert repeated(override, defaults, f"{name}: ") == []
