"""Encoders, heads and configs: shapes, freezing that really freezes, clear errors."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from ecgkt.models.config import EcgEncoderConfig, HeadConfig, ProjectorConfig, TabularEncoderConfig
from ecgkt.models.encoders import EcgEncoder, TabularEncoder
from ecgkt.models.heads import LateFusionClassifier, MLPHead, Projector

torch.set_num_threads(1)

SMALL = EcgEncoderConfig(d_model=16, d_state=4, n_layers=3, dropout=0.3)


@pytest.mark.parametrize("length", [250, 1000])
def test_ecg_encoder_pools_any_length_to_d_model(length: int) -> None:
    encoder = EcgEncoder(SMALL)
    assert encoder.out_dim == 16 and len(encoder.layers) == 3
    assert encoder(torch.randn(3, 12, length)).shape == (3, 16)


def test_ecg_encoder_rejects_wrong_lead_count() -> None:
    with pytest.raises(ValueError, match="12 leads"):
        EcgEncoder(SMALL)(torch.randn(2, 8, 250))


def _snapshot(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _changed(before: list[torch.Tensor], module: torch.nn.Module) -> list[bool]:
    return [not torch.equal(b, p.detach()) for b, p in zip(before, module.parameters(), strict=True)]


def test_freeze_first_really_freezes_the_early_blocks() -> None:
    torch.manual_seed(0)
    encoder = EcgEncoder(SMALL)
    encoder.freeze_first(2)
    encoder.train()
    frozen = [encoder.input_projection, encoder.layers[0], encoder.layers[1]]
    trainable = encoder.layers[2]
    frozen_before = [_snapshot(m) for m in frozen]
    trainable_before = _snapshot(trainable)
    # Even an optimiser given EVERY parameter (with weight decay) must not move frozen weights.
    optimiser = torch.optim.AdamW(encoder.parameters(), lr=1e-2, weight_decay=0.1)
    for _ in range(2):
        optimiser.zero_grad()
        encoder(torch.randn(4, 12, 50)).pow(2).mean().backward()
        optimiser.step()
    for module, before in zip(frozen, frozen_before, strict=True):
        assert not any(_changed(before, module))
    assert all(_changed(trainable_before, trainable))
    assert all(not p.requires_grad for m in frozen for p in m.parameters())


def test_frozen_blocks_stay_in_eval_mode_so_their_output_is_deterministic() -> None:
    encoder = EcgEncoder(SMALL)
    encoder.freeze_first(2)
    encoder.train()  # what Lightning does at the start of every training epoch
    assert not encoder.input_projection.training
    assert not encoder.layers[0].training and not encoder.layers[1].s4.dropout.training
    assert encoder.layers[2].training and encoder.layers[2].dropout.training
    captured: list[torch.Tensor] = []
    encoder.layers[1].register_forward_hook(lambda _m, _i, out: captured.append(out.detach()))
    x = torch.randn(2, 12, 40)
    encoder(x)
    encoder(x)
    assert torch.equal(captured[0], captured[1])
    encoder.eval()
    assert not any(m.training for m in encoder.modules())


def test_freeze_first_zero_freezes_nothing_and_calls_replace_each_other() -> None:
    encoder = EcgEncoder(SMALL)
    encoder.freeze_first(0)
    assert all(p.requires_grad for p in encoder.parameters()) and encoder.n_frozen == 0
    encoder.freeze_first(3)
    assert not any(p.requires_grad for p in encoder.parameters())
    encoder.freeze_first(1)
    assert all(p.requires_grad for p in encoder.layers[1].parameters())
    assert not any(p.requires_grad for p in encoder.layers[0].parameters())
    encoder.train()
    assert encoder.layers[1].training and not encoder.layers[0].training
    with pytest.raises(ValueError, match="between 0 and 3"):
        encoder.freeze_first(4)


def test_tabular_encoder_embeds_categoricals_and_runs_the_mlp() -> None:
    encoder = TabularEncoder(5, [3, 4], TabularEncoderConfig(hidden=[32, 16], embedding_dim=4))
    assert encoder.in_dim == 5 + 2 * 4 and encoder.out_dim == 16
    categorical = torch.tensor([[0, 3], [2, 0], [1, 1]])
    out = encoder(torch.randn(3, 5), categorical)
    assert out.shape == (3, 16) and (out >= 0).all()  # ends in ReLU
    encoder.eval()
    numeric = torch.randn(3, 5)
    other = categorical.clone()
    other[0, 1] = 2
    assert not torch.equal(encoder(numeric, categorical)[0], encoder(numeric, other)[0])


def test_tabular_encoder_without_categoricals_or_hidden_layers() -> None:
    encoder = TabularEncoder(4, [], TabularEncoderConfig(hidden=[]))
    assert encoder.out_dim == 4
    assert encoder(torch.randn(2, 4), torch.zeros(2, 0, dtype=torch.long)).shape == (2, 4)


def test_tabular_encoder_errors_are_clear() -> None:
    encoder = TabularEncoder(2, [3], TabularEncoderConfig())
    with pytest.raises(ValueError, match=r"outside 0\.\.2"):
        encoder(torch.randn(2, 2), torch.tensor([[0], [3]]))
    with pytest.raises(ValueError, match="numeric of shape"):
        encoder(torch.randn(2, 3), torch.tensor([[0], [1]]))
    with pytest.raises(ValueError, match="at least one"):
        TabularEncoder(0, [], TabularEncoderConfig())


def test_mlp_head_without_hidden_is_one_linear_layer() -> None:
    head = MLPHead(16, 5, HeadConfig(hidden=[]))
    linears = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 1 and linears[0].in_features == 16 and linears[0].out_features == 5
    deep = MLPHead(16, 5, HeadConfig(hidden=[8, 4]))
    assert deep(torch.randn(3, 16)).shape == (3, 5)
    assert [m.out_features for m in deep.modules() if isinstance(m, torch.nn.Linear)] == [8, 4, 5]


def test_projector_is_linear_batchnorm_relu_linear() -> None:
    projector = Projector(16, ProjectorConfig(hidden=32, out_dim=8))
    kinds = [type(m).__name__ for m in projector.net]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert projector(torch.randn(4, 16)).shape == (4, 8)


def test_late_fusion_uses_both_modalities() -> None:
    torch.manual_seed(0)
    ecg = EcgEncoder(EcgEncoderConfig(d_model=8, d_state=4, n_layers=1))
    tab = TabularEncoder(3, [2], TabularEncoderConfig(hidden=[8]))
    model = LateFusionClassifier(ecg, tab, out_dim=4, head=HeadConfig(hidden=[8])).eval()
    x, numeric, categorical = torch.randn(2, 12, 50), torch.randn(2, 3), torch.tensor([[0], [1]])
    base = model(x, numeric, categorical)
    assert base.shape == (2, 4)
    assert not torch.allclose(base, model(x, numeric + 1.0, categorical))
    assert not torch.allclose(base, model(x + 1.0, numeric, categorical))


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (EcgEncoderConfig, {"d_model": 0}, "greater than 0"),
        (EcgEncoderConfig, {"d_state": 5}, "even"),
        (EcgEncoderConfig, {"dropout": 1.0}, "less than 1"),
        (EcgEncoderConfig, {"dt_min": 0.5, "dt_max": 0.1}, "dt_min"),
        (EcgEncoderConfig, {"d_modle": 64}, "Extra inputs"),
        (TabularEncoderConfig, {"hidden": [64, -1]}, "positive"),
        (HeadConfig, {"dropout": -0.1}, "greater than or equal"),
        (ProjectorConfig, {"out_dim": 0}, "greater than 0"),
    ],
)
def test_configs_reject_impossible_values_and_unknown_keys(
    cls: type, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        cls(**kwargs)


def test_config_round_trips_through_a_plain_dict() -> None:
    config = EcgEncoderConfig(d_model=64, n_layers=2, bidirectional=False)
    assert EcgEncoderConfig.model_validate(config.model_dump()) == config
