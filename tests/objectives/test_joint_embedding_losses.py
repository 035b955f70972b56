"""Barlow Twins, VICReg and InfoNCE against literal hand computations of their formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ecgkt.objectives import BarlowTwinsLoss, InfoNCELoss, VICRegLoss, build_objective

torch.set_num_threads(1)


def _pair(n: int = 12, dim: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z1 = rng.normal(size=(n, dim)) * rng.uniform(0.5, 3.0, size=dim) + rng.normal(size=dim)
    z2 = 0.6 * z1 + rng.normal(size=(n, dim))
    return z1, z2


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float64)


def test_barlow_twins_equals_a_literal_double_loop_of_equation_1() -> None:
    z1, z2 = _pair()
    n, dim = z1.shape
    lam, eps = 0.3, 1e-5
    s1 = (z1 - z1.mean(0)) / np.sqrt(z1.var(0) + eps)  # batch norm, biased variance, no affine
    s2 = (z2 - z2.mean(0)) / np.sqrt(z2.var(0) + eps)
    expected = 0.0
    for i in range(dim):
        for j in range(dim):
            c_ij = sum(s1[b, i] * s2[b, j] for b in range(n)) / n
            expected += (1.0 - c_ij) ** 2 if i == j else lam * c_ij**2
    got = BarlowTwinsLoss(lambda_offdiag=lam, eps=eps)(_t(z1), _t(z2)).item()
    assert got == pytest.approx(expected, rel=1e-5)


def test_barlow_twins_is_near_zero_for_perfectly_correlated_decorrelated_embeddings() -> None:
    rng = np.random.default_rng(1)
    centred = rng.normal(size=(64, 8))
    centred -= centred.mean(0)
    q, _ = np.linalg.qr(centred)  # centred, mutually orthogonal columns
    loss = BarlowTwinsLoss()
    assert loss(_t(q), _t(q)).item() < 1e-4
    assert loss(_t(q), _t(3.0 * q + 2.0)).item() < 1e-4  # invariant to per-dimension affine maps
    assert loss(_t(q), _t(rng.normal(size=(64, 8)))).item() > 1.0


def test_vicreg_terms_against_hand_computation() -> None:
    z1, z2 = _pair(n=10, dim=4, seed=2)
    eps = 1e-4
    invariance = np.mean((z1 - z2) ** 2)

    def variance(z: np.ndarray) -> float:
        return float(np.mean(np.maximum(0.0, 1.0 - np.sqrt(z.var(0, ddof=1) + eps))))

    def covariance(z: np.ndarray) -> float:
        cov = np.cov(z, rowvar=False)
        return float((np.sum(cov**2) - np.sum(np.diag(cov) ** 2)) / z.shape[1])

    loss = VICRegLoss(sim_coeff=2.0, std_coeff=3.0, cov_coeff=0.5, eps=eps)
    terms = loss.terms(_t(z1), _t(z2))
    assert terms.invariance.item() == pytest.approx(invariance, rel=1e-5)
    assert terms.variance.item() == pytest.approx((variance(z1) + variance(z2)) / 2, rel=1e-5)
    assert terms.covariance.item() == pytest.approx(covariance(z1) + covariance(z2), rel=1e-5)
    expected = 2.0 * invariance + 3.0 * terms.variance.item() + 0.5 * terms.covariance.item()
    assert loss(_t(z1), _t(z2)).item() == pytest.approx(expected, rel=1e-5)


def test_vicreg_variance_term_penalises_collapse() -> None:
    collapsed = torch.ones(16, 4) + 1e-3 * torch.randn(16, 4)
    spread = 2.0 * torch.randn(16, 4)
    loss = VICRegLoss()
    assert loss.terms(collapsed, collapsed).variance.item() > 0.9
    assert loss.terms(spread, spread).variance.item() < 0.2


def test_infonce_equals_cross_entropy_on_the_hand_computed_similarity_matrix() -> None:
    z1, z2 = _pair(n=7, dim=5, seed=3)
    temperature = 0.2
    n1 = z1 / np.linalg.norm(z1, axis=1, keepdims=True)
    n2 = z2 / np.linalg.norm(z2, axis=1, keepdims=True)
    logits = n1 @ n2.T / temperature

    def cross_entropy_to_diagonal(m: np.ndarray) -> float:
        log_softmax = m - np.log(np.exp(m).sum(axis=1, keepdims=True))
        return float(-np.mean(np.diag(log_softmax)))

    expected = (cross_entropy_to_diagonal(logits) + cross_entropy_to_diagonal(logits.T)) / 2
    assert InfoNCELoss(temperature)(_t(z1), _t(z2)).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("name", ["barlow_twins", "vicreg", "infonce"])
def test_aligned_pairs_score_lower_than_shuffled_pairs(name: str) -> None:
    torch.manual_seed(0)
    z1 = torch.randn(64, 16)
    z2 = z1 + 0.1 * torch.randn(64, 16)
    loss = build_objective(name)  # type: ignore[arg-type]
    shuffled = z2[torch.randperm(64)]
    assert loss(z1, z2).item() < 0.5 * loss(z1, shuffled).item()


@pytest.mark.parametrize("name", ["barlow_twins", "vicreg", "infonce"])
def test_losses_give_gradients_to_both_branches(name: str) -> None:
    z1 = torch.randn(8, 4, requires_grad=True)
    z2 = torch.randn(8, 4, requires_grad=True)
    build_objective(name)(z1, z2).backward()  # type: ignore[arg-type]
    assert z1.grad is not None and z1.grad.abs().sum() > 0
    assert z2.grad is not None and z2.grad.abs().sum() > 0


def test_build_objective_passes_hyper_parameters_and_rejects_unknown_ones() -> None:
    objective = build_objective("barlow_twins", lambda_offdiag=0.01)
    assert isinstance(objective, BarlowTwinsLoss) and objective.lambda_offdiag == 0.01
    assert isinstance(build_objective("infonce", temperature=0.5), InfoNCELoss)
    with pytest.raises(ValueError, match="unknown objective"):
        build_objective("simclr")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="does not accept"):
        build_objective("vicreg", temperature=0.1)
    with pytest.raises(ValueError, match="temperature"):
        build_objective("infonce", temperature=0.0)


@pytest.mark.parametrize("name", ["barlow_twins", "vicreg", "infonce"])
def test_bad_batches_are_clear_errors(name: str) -> None:
    loss = build_objective(name)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 2"):
        loss(torch.randn(1, 4), torch.randn(1, 4))
    with pytest.raises(ValueError, match="equal shape"):
        loss(torch.randn(4, 4), torch.randn(4, 5))


@pytest.mark.parametrize("name", ["barlow_twins", "vicreg", "infonce"])
def test_losses_are_computed_in_float32_under_bf16_autocast(name: str) -> None:
    torch.manual_seed(1)
    z1 = torch.randn(32, 64)
    z2 = z1 + 0.3 * torch.randn(32, 64)
    loss = build_objective(name)  # type: ignore[arg-type]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = loss(z1, z2)
    assert under_autocast.dtype == torch.float32
    assert under_autocast.item() == pytest.approx(loss(z1, z2).item(), rel=1e-6)
