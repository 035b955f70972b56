"""Lightning modules: masked loss, optimiser groups (discriminative lr, SSM lr, no decay), freezing."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from ecgkt.config import RunConfig
from ecgkt.models.s4d import ssm_parameters
from ecgkt.train.modules import JointEmbeddingModule, SupervisedModule


def _module(config: RunConfig, **kwargs: Any) -> SupervisedModule:
    optim = config.finetune.optim.model_copy(update={"lr": 1e-2, "ssm_lr": 1e-3, "weight_decay": 0.05})
    defaults: dict[str, Any] = {
        "encoder": config.encoder.model_dump(),
        "head": config.finetune.head.model_dump(),
        "n_labels": 3,
        "optim": optim.model_dump(),
    }
    defaults.update(kwargs)
    return SupervisedModule(**defaults)


def _groups(module: SupervisedModule) -> dict[str, dict[str, Any]]:
    optimizer = module.configure_optimizers()
    if isinstance(optimizer, dict):
        optimizer = optimizer["optimizer"]
    return {group["name"]: group for group in optimizer.param_groups}


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_training_loss_ignores_unknown_targets(smoke_config: RunConfig) -> None:
    torch.manual_seed(0)
    module = _module(smoke_config).eval()  # eval: no dropout, so two forward passes agree
    x = torch.randn(4, 12, 250)
    known = torch.tensor([[1.0, 0.0, 1.0]] * 4)
    masked = known.clone()
    masked[:, 2] = float("nan")
    loss_masked = module.training_step({"x": x, "y": masked}, 0)
    logits = module.window_logits({"x": x})[:, 0]
    manual = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, :2], known[:, :2])
    assert math.isfinite(float(loss_masked.detach()))
    assert float(loss_masked.detach()) == pytest.approx(float(manual.detach()), rel=1e-5)
    loss_masked.backward()
    assert all(torch.isfinite(p.grad).all() for p in module.parameters() if p.grad is not None)


def test_discriminative_learning_rates_and_ssm_group(smoke_config: RunConfig) -> None:
    module = _module(smoke_config, encoder_lr_factor=0.1, freeze_layers=0)
    groups = _groups(module)
    assert groups["head"]["lr"] == pytest.approx(1e-2)
    assert groups["encoder"]["lr"] == pytest.approx(1e-3)
    assert groups["ssm"]["lr"] == pytest.approx(1e-4)
    assert groups["ssm"]["weight_decay"] == 0.0
    assert groups["encoder"]["weight_decay"] == pytest.approx(0.05)
    ssm_ids = {id(p) for p in ssm_parameters(module)}
    assert {id(p) for p in groups["ssm"]["params"]} == ssm_ids
    assert not ssm_ids & {id(p) for p in groups["encoder"]["params"] + groups["head"]["params"]}


def test_frozen_layers_leave_the_optimiser_and_stay_in_eval_mode(smoke_config: RunConfig) -> None:
    module = _module(smoke_config, freeze_layers=1)
    optimised = {id(p) for group in _groups(module).values() for p in group["params"]}
    encoder = module.encoder
    frozen = [*encoder.input_projection.parameters(), *encoder.layers[0].parameters()]
    assert frozen and not optimised & {id(p) for p in frozen}
    assert {id(p) for p in encoder.layers[1].parameters()} <= optimised
    module.train()  # what Lightning calls at the start of every epoch
    assert not encoder.layers[0].training and encoder.layers[1].training


def test_frozen_encoder_trains_only_the_head(smoke_config: RunConfig) -> None:
    module = _module(smoke_config, freeze_encoder=True)
    groups = _groups(module)
    assert set(groups) == {"head"}
    module.train()
    assert not module.encoder.training and module.net.head.training


def test_evaluation_averages_sigmoids_over_windows(smoke_config: RunConfig) -> None:
    torch.manual_seed(0)
    module = _module(smoke_config).eval()
    x = torch.randn(2, 4, 12, 250)
    probs = module.predict_probabilities({"x": x})
    manual = torch.stack([torch.sigmoid(module.net(x[:, w])) for w in range(4)], 1).mean(1)
    assert torch.allclose(probs, manual, atol=1e-6)


def test_fusion_module_uses_tabular_inputs(smoke_config: RunConfig) -> None:
    torch.manual_seed(0)
    module = _module(
        smoke_config,
        tabular_encoder=smoke_config.baseline.tabular_encoder.model_dump(),
        n_numeric=3,
        categorical_cardinalities=[3],
    ).eval()
    batch = {"x": torch.randn(4, 2, 12, 250), "numeric": torch.randn(4, 3), "categorical": torch.zeros(4, 1).long()}
    first = module.predict_probabilities(batch)
    batch["numeric"] = batch["numeric"] + 3.0
    assert not torch.allclose(first, module.predict_probabilities(batch))


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_joint_embedding_module_loss_and_groups(smoke_config: RunConfig) -> None:
    torch.manual_seed(0)
    stage = smoke_config.pretrain
    module = JointEmbeddingModule(
        encoder=smoke_config.encoder.model_dump(),
        tabular_encoder=stage.tabular_encoder.model_dump(),
        projector=stage.projector.model_dump(),
        n_numeric=3,
        categorical_cardinalities=[3],
        objective="vicreg",
        objective_kwargs={},
        optim=stage.optim.model_dump(),
    )
    batch = {"x": torch.randn(6, 12, 250), "numeric": torch.randn(6, 3), "categorical": torch.ones(6, 1).long()}
    loss = module.training_step(batch, 0)
    loss.backward()
    assert module.encoder.input_projection.weight.grad is not None
    optimizer = module.configure_optimizers()
    names = {g["name"] for g in optimizer.param_groups}
    assert names == {"encoder", "ssm", "tabular+projectors"}


def test_paired_bootstrap_difference_detects_a_consistent_gain() -> None:
    import numpy as np

    from ecgkt.train.evaluation import paired_bootstrap_difference

    rng = np.random.default_rng(0)
    targets = (rng.random((300, 4)) < 0.3).astype(np.float32)
    targets[rng.random((300, 4)) < 0.1] = np.nan
    signal = np.nan_to_num(targets, nan=0.5) + rng.normal(0, 1.0, targets.shape)
    better = (signal + np.nan_to_num(targets, nan=0.5)).astype(np.float32)
    worse = signal.astype(np.float32)
    result = paired_bootstrap_difference(targets, better, worse, n_resamples=100, confidence=0.95, seed=0)
    assert result.delta > 0 and result.low > 0  # a consistent gain is significant when paired
    same = paired_bootstrap_difference(targets, worse, worse, n_resamples=20, confidence=0.95, seed=0)
    assert same.delta == 0.0 and same.low == 0.0 and same.high == 0.0
