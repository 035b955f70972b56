"""The transfer routes' losses and penalties: zero where they must be, gradients that point home."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ecgkt.config import RunConfig
from ecgkt.train.transfer.distill import (
    DistillationModule,
    PartlyLabelledDataModule,
    bernoulli_kd_loss,
    cosine_hint_loss,
)
from ecgkt.train.transfer.regularised import RegularisedFinetuneModule, feature_penalty, l2_sp_penalty
from ecgkt.train.transfer.report import pooled_paired_difference


def test_l2_sp_is_zero_at_the_anchor_and_its_gradient_points_back() -> None:
    anchor = torch.randn(5, 3)
    theta = torch.nn.Parameter(anchor.clone())
    assert l2_sp_penalty([theta], [anchor]).item() == 0.0
    with torch.no_grad():
        theta.add_(torch.randn(5, 3))
    penalty = l2_sp_penalty([theta], [anchor])
    penalty.backward()
    assert theta.grad is not None
    torch.testing.assert_close(theta.grad, 2 * (theta.detach() - anchor))
    before = (theta.detach() - anchor).norm()
    after = (theta.detach() - 0.1 * theta.grad - anchor).norm()  # one gradient-descent step
    assert after < before


def test_l2_sp_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="differ"):
        l2_sp_penalty([torch.zeros(2)], [torch.zeros(3)])


def test_feature_penalty_zero_for_equal_features_and_positive_otherwise() -> None:
    h = torch.randn(4, 8)
    assert feature_penalty(h, h.clone()).item() == 0.0
    assert feature_penalty(h + 1.0, h).item() == pytest.approx(1.0)


def _supervised_kwargs(config: RunConfig, n_labels: int = 3) -> dict[str, object]:
    return {
        "encoder": config.encoder.model_dump(),
        "head": config.baseline.head.model_dump(),
        "n_labels": n_labels,
        "optim": config.baseline.optim.model_dump(),
    }


def test_regularised_module_penalties_vanish_at_init_and_grow_when_weights_move(smoke_config: RunConfig) -> None:
    torch.manual_seed(0)
    module = RegularisedFinetuneModule(l2sp_alpha=0.5, feature_beta=1.0, **_supervised_kwargs(smoke_config))
    module.eval()  # no dropout: the feature anchor must then match exactly
    batch = {"x": torch.randn(4, 12, 250), "y": torch.zeros(4, 3)}
    terms = module.penalties(batch)
    assert terms["l2sp"].item() == 0.0
    assert terms["feature"].item() == pytest.approx(0.0, abs=1e-10)
    with torch.no_grad():
        for parameter in module.encoder.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    terms = module.penalties(batch)
    assert terms["l2sp"].item() > 0 and terms["feature"].item() > 0
    # the anchors are buffers: they survive a state_dict round trip (resume keeps the pretrained anchor)
    clone = RegularisedFinetuneModule(l2sp_alpha=0.5, feature_beta=1.0, **_supervised_kwargs(smoke_config))
    clone.load_state_dict(module.state_dict())
    clone.eval()
    assert clone.penalties(batch)["l2sp"].item() == pytest.approx(terms["l2sp"].item(), rel=1e-5)


def test_regularised_penalty_skips_frozen_parameters(smoke_config: RunConfig) -> None:
    kwargs = _supervised_kwargs(smoke_config)
    module = RegularisedFinetuneModule(l2sp_alpha=1.0, freeze_layers=1, **kwargs)  # type: ignore[arg-type]
    params, _ = module._pairs()
    assert all(p.requires_grad for p in params)
    assert len(params) < len(list(module.encoder.parameters()))


def test_kd_loss_zero_when_student_equals_teacher_and_pulls_towards_it() -> None:
    teacher = torch.randn(6, 4)
    assert bernoulli_kd_loss(teacher.clone(), teacher, temperature=2.0).item() == pytest.approx(0.0, abs=1e-6)
    student = torch.nn.Parameter(teacher + torch.randn(6, 4))
    loss = bernoulli_kd_loss(student, teacher, temperature=2.0)
    assert loss.item() > 0
    loss.backward()
    assert student.grad is not None
    expected = (torch.sigmoid(student.detach() / 2) - torch.sigmoid(teacher / 2)) * 2 / teacher.numel()
    torch.testing.assert_close(student.grad, expected)


def test_cosine_hint_zero_for_parallel_embeddings() -> None:
    teacher = torch.randn(5, 7)
    assert cosine_hint_loss(3.0 * teacher, teacher).item() == pytest.approx(0.0, abs=1e-6)
    assert cosine_hint_loss(-teacher, teacher).item() == pytest.approx(2.0, abs=1e-6)


def test_distillation_student_is_ecg_only_and_trains_against_the_teacher(smoke_config: RunConfig) -> None:
    from ecgkt.models.config import TabularEncoderConfig
    from ecgkt.models.encoders import EcgEncoder, TabularEncoder
    from ecgkt.models.heads import LateFusionClassifier

    torch.manual_seed(0)
    teacher = LateFusionClassifier(
        EcgEncoder(smoke_config.encoder),
        TabularEncoder(4, [3], TabularEncoderConfig.model_validate(smoke_config.baseline.tabular_encoder.model_dump())),
        3,
        smoke_config.baseline.head,
    )
    student = DistillationModule(teacher_dim=teacher.head.in_dim, **_supervised_kwargs(smoke_config))  # type: ignore[arg-type]
    student.attach_teacher(teacher)
    assert not any(p.requires_grad for p in student.teacher.parameters())  # type: ignore[union-attr]
    batch = {
        "x": torch.randn(4, 12, 250),
        "y": torch.full((4, 3), float("nan")),  # unlabelled: only the teacher terms train
        "numeric": torch.randn(4, 4),
        "categorical": torch.zeros(4, 1, dtype=torch.long),
    }
    student.log = lambda *args, **kwargs: None  # type: ignore[method-assign]
    loss = student.training_step(batch, 0)
    loss.backward()
    assert loss.item() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.encoder.parameters())
    assert all(p.grad is None for p in teacher.parameters())
    configured = student.configure_optimizers()
    optimiser = configured["optimizer"] if isinstance(configured, dict) else configured
    trained = {id(p) for group in optimiser.param_groups for p in group["params"]}
    assert all(id(p) not in trained for p in teacher.parameters())
    assert id(student.adapter.weight) in trained


def test_partly_labelled_datamodule_masks_unlabelled_training_records(
    tiny_store: Path, smoke_config: RunConfig
) -> None:
    from ecgkt.store import Store

    train = Store.open(tiny_store).split_indices("train")
    labelled = train[: len(train) // 2]
    module = PartlyLabelledDataModule(
        tiny_store, smoke_config.data, seed=0, target="diagnoses", tabular_groups=("routine",), labelled_rows=labelled
    )
    dataset = module.dataset("train")
    assert len(dataset) == len(train)
    targets = dataset.targets
    assert targets is not None
    is_labelled = np.isin(dataset.rows, labelled)
    assert np.isnan(targets[~is_labelled]).all()
    assert np.isfinite(targets[is_labelled]).any()
    assert len(module.dataset("test")) == len(Store.open(tiny_store).split_indices("test"))


def test_pooled_difference_is_zero_for_identical_models_and_positive_for_a_better_one() -> None:
    rng = np.random.default_rng(0)
    replicates = []
    for _ in range(3):
        targets = (rng.random((80, 4)) < 0.4).astype(np.float32)
        noise = rng.random((80, 4)).astype(np.float32)
        replicates.append((targets, noise, noise.copy()))
    same = pooled_paired_difference(replicates, n_resamples=50)
    assert same["delta"] == 0.0 and same["ci_low"] == 0.0 and same["ci_high"] == 0.0
    better = [(t, t * 0.5 + 0.5 * b, b) for t, _, b in replicates]
    result = pooled_paired_difference(better, n_resamples=200)
    assert result["delta"] > 0.1 and result["ci_low"] > 0
    assert result["n_replicates"] == 3 and len(result["per_replicate"]) == 3
    assert result["t_ci_low"] <= result["delta"] <= result["t_ci_high"]


def test_ceiling_is_read_at_a_dotted_key_and_a_missing_key_lists_the_numbers(tmp_path: Path) -> None:
    from ecgkt.train.transfer.report import load_ceiling
    from ecgkt.train.transfer.study import StudyError

    path = tmp_path / "ceilings.json"
    path.write_text('{"ecg_oracle": {"diagnoses": {"macro_auroc": 0.81}}, "tabular_oracle": {"diagnoses": 0.9}}')
    assert load_ceiling(path, "ecg_oracle.diagnoses") == pytest.approx(0.81)  # {"macro_auroc": x} accepted
    assert load_ceiling(path, "tabular_oracle.diagnoses") == pytest.approx(0.9)
    with pytest.raises(StudyError, match=r"tabular_oracle\.diagnoses"):
        load_ceiling(path, "nope")


def test_verdicts_use_the_wider_interval_and_the_001_bar() -> None:
    from ecgkt.train.transfer.report import resolves, verdict

    records_only = {"delta": 0.02, "ci_low": 0.012, "ci_high": 0.028}
    assert verdict(records_only) == "better" and resolves(records_only)
    # the seeds interval is wider and crosses 0: no longer 'better'
    with_seeds = {**records_only, "t_ci_low": -0.01, "t_ci_high": 0.05}
    assert verdict(with_seeds) == "unresolved" and not resolves(with_seeds)
    assert verdict({"delta": -0.02, "ci_low": -0.03, "ci_high": -0.01}) == "worse"
    assert verdict({"delta": 0.001, "ci_low": -0.004, "ci_high": 0.006}) == "equivalent"


def test_pairs_scored_on_other_records_are_refused_and_draws_are_shared_per_replicate() -> None:
    from ecgkt.train.transfer.report import pool_differences, resample_counts, score_run

    rng = np.random.default_rng(1)
    targets = (rng.random((60, 3)) < 0.5).astype(np.float32)
    probs_a, probs_b = rng.random((60, 3)).astype(np.float32), rng.random((60, 3)).astype(np.float32)
    counts = resample_counts(60, replicate=2, n_resamples=30, seed=0)
    assert np.array_equal(counts, resample_counts(60, replicate=2, n_resamples=30, seed=0))
    assert not np.array_equal(counts, resample_counts(60, replicate=3, n_resamples=30, seed=0))
    a, b = score_run(targets, probs_a, counts), score_run(targets, probs_b, counts)
    pooled = pool_differences([(a, b)])
    assert pooled["delta"] == pytest.approx(a.point - b.point)
    other_targets = targets.copy()
    other_targets[0, 0] = 1.0 - other_targets[0, 0]
    with pytest.raises(ValueError, match="different test records"):
        pool_differences([(a, score_run(other_targets, probs_b, counts))])
