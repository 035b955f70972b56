"""The S4D layer against an independent step-by-step recurrence, plus directionality and training hooks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ecgkt.models.s4 import S4Layer, s4d_recurrence_reference
from ecgkt.models.s4d import S4DKernel, ssm_parameters

torch.set_num_threads(1)


def _randomised_kernel_parameters(kernel: S4DKernel, seed: int) -> None:
    """Move A and dt away from the init so every mode (real decay, oscillation) is exercised."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        kernel.log_dt.copy_(
            torch.empty_like(kernel.log_dt).uniform_(math.log(0.02), math.log(0.5), generator=generator)
        )
        kernel.log_A_real.add_(0.5 * torch.randn(kernel.log_A_real.shape, generator=generator))
        kernel.A_imag.add_(torch.randn(kernel.A_imag.shape, generator=generator))


def _layer(bidirectional: bool, d_model: int = 6, d_state: int = 8, seed: int = 0) -> S4Layer:
    torch.manual_seed(seed)
    layer = S4Layer(d_model, d_state, bidirectional=bidirectional, dt_min=1e-2, dt_max=0.5).eval()
    _randomised_kernel_parameters(layer.kernel, seed)
    return layer


def test_kernel_matches_closed_form_computed_in_complex_numpy() -> None:
    kernel = S4DKernel(d_model=5, d_state=6, channels=2)
    _randomised_kernel_parameters(kernel, seed=1)
    length = 37
    dt = np.exp(kernel.log_dt.detach().double().numpy())[:, None]
    A = -np.exp(kernel.log_A_real.detach().double().numpy()) + 1j * kernel.A_imag.detach().double().numpy()
    C = kernel.C.detach().double().numpy()
    C = C[..., 0] + 1j * C[..., 1]
    dA = np.exp(dt * A)
    dB = (dA - 1.0) / A
    expected = np.zeros((2, 5, length))
    for step in range(length):
        expected[..., step] = 2.0 * np.real(np.sum(C * dB * dA**step, axis=-1))
    np.testing.assert_allclose(kernel(length).detach().double().numpy(), expected, rtol=1e-4, atol=1e-6)


def test_kernel_convolution_equals_recurrence_per_channel() -> None:
    kernel = S4DKernel(d_model=4, d_state=8, channels=2)
    _randomised_kernel_parameters(kernel, seed=2)
    u = torch.randn(2, 4, 50)
    k = kernel(50).detach()
    causal = torch.zeros(2, 2, 4, 50)
    for t in range(50):
        causal[..., t] = (k[None, :, :, : t + 1].flip(-1) * u[:, None, :, : t + 1]).sum(-1)
    reference = s4d_recurrence_reference(kernel, u)
    np.testing.assert_allclose(causal.numpy(), reference.numpy(), rtol=1e-4, atol=1e-5)


def test_causal_fft_ssm_equals_step_by_step_recurrence_with_d_skip() -> None:
    layer = _layer(bidirectional=False, seed=3)
    u = torch.randn(3, 6, 64)
    dA, dB, C = layer.kernel.discretize()
    state = torch.zeros(3, 6, dA.shape[-1], dtype=torch.complex128)
    outputs = []
    for k in range(64):  # x_k = dA x_{k-1} + dB u_k ; y_k = 2 Re(C x_k) + D u_k
        state = dA.detach().cdouble() * state + dB.detach().cdouble() * u[:, :, k, None].cdouble()
        y_k = (
            2.0 * (C[0].detach().cdouble() * state).sum(-1).real
            + layer.D.detach().double() * u[:, :, k].double()
        )
        outputs.append(y_k)
    expected = torch.stack(outputs, dim=-1)
    with torch.no_grad():
        np.testing.assert_allclose(layer.ssm(u).double().numpy(), expected.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_layer_output_equals_recurrence_reference(bidirectional: bool) -> None:
    layer = _layer(bidirectional, seed=4)
    u = torch.randn(2, 6, 45)
    with torch.no_grad():
        out = layer(u)
    np.testing.assert_allclose(out.numpy(), s4d_recurrence_reference(layer, u).numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_direct_convolution_mode_equals_fft(bidirectional: bool) -> None:
    layer = _layer(bidirectional, seed=5)
    u = torch.randn(2, 6, 33)
    with torch.no_grad():
        fft_out = layer(u)
        layer.convolution = "direct"
        direct_out = layer(u)
    np.testing.assert_allclose(direct_out.numpy(), fft_out.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("bidirectional", "sees_future"), [(False, False), (True, True)])
def test_only_bidirectional_layers_see_the_future(bidirectional: bool, sees_future: bool) -> None:
    layer = _layer(bidirectional, seed=6)
    u = torch.randn(1, 6, 40)
    t = 20
    perturbed = u.clone()
    perturbed[:, :, t + 5] += 3.0
    with torch.no_grad():
        change_at_t = (layer(perturbed) - layer(u))[:, :, t].abs().max().item()
        change_later = (layer(perturbed) - layer(u))[:, :, t + 5].abs().max().item()
    assert change_later > 1e-3  # the perturbation is visible where it happens
    if sees_future:
        assert change_at_t > 1e-4
    else:
        assert change_at_t < 1e-5


def test_backward_ssm_does_not_count_the_present_twice() -> None:
    # In a bidirectional layer with D = 0 and the forward read-out C[0] = 0, y[t] must ignore u[t].
    layer = _layer(bidirectional=True, seed=7)
    with torch.no_grad():
        layer.D.zero_()
        layer.kernel.C[0].zero_()
    u = torch.randn(1, 6, 30)
    perturbed = u.clone()
    perturbed[:, :, 10] += 5.0
    with torch.no_grad():
        delta = layer.ssm(perturbed) - layer.ssm(u)
    assert delta[:, :, 10].abs().max().item() < 1e-5
    assert delta[:, :, 9].abs().max().item() > 1e-4


@pytest.mark.parametrize("length", [1, 7, 250, 1000])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_shapes_for_any_length(length: int, bidirectional: bool) -> None:
    layer = S4Layer(8, 4, bidirectional=bidirectional)
    assert layer(torch.randn(2, 8, length)).shape == (2, 8, length)


def test_wrong_input_shape_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="expects"):
        S4Layer(8)(torch.randn(2, 7, 10))


def test_gradients_reach_every_parameter() -> None:
    layer = S4Layer(6, 4, bidirectional=True, dt_min=1e-2, dt_max=0.5)
    layer(torch.randn(2, 6, 30)).pow(2).mean().backward()
    for name, parameter in layer.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_ssm_parameters_are_exactly_dt_and_a() -> None:
    model = torch.nn.Sequential(S4Layer(4, 4), torch.nn.Linear(3, 3), S4Layer(4, 4, bidirectional=False))
    found = {id(p) for p in ssm_parameters(model)}
    expected = {
        id(p)
        for module in model.modules()
        if isinstance(module, S4DKernel)
        for p in (module.log_dt, module.log_A_real, module.A_imag)
    }
    assert found == expected and len(ssm_parameters(model)) == 6
    others = {name for name, p in model.named_parameters() if id(p) not in found}
    assert any(name.endswith("kernel.C") for name in others)
    assert any(name.endswith(".D") for name in others)


def test_real_part_of_a_stays_negative_whatever_the_parameter() -> None:
    kernel = S4DKernel(3, 4)
    with torch.no_grad():
        kernel.log_A_real.fill_(5.0)
    dA, _, _ = kernel.discretize()
    assert (dA.abs() < 1).all()


@pytest.mark.parametrize(
    "kwargs",
    [dict(d_state=3), dict(d_state=0), dict(dt_min=0.2, dt_max=0.1), dict(channels=0)],
)
def test_invalid_kernel_arguments_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        S4DKernel(4, **kwargs)  # type: ignore[arg-type]


def test_ssm_stays_float32_under_bf16_autocast() -> None:
    layer = _layer(bidirectional=True, seed=8)
    u = torch.randn(2, 6, 250)
    with torch.no_grad():
        reference = layer.ssm(u)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            under_autocast = layer.ssm(u)
            full_layer = layer(u)
    assert torch.equal(under_autocast, reference)
    assert full_layer.shape == (2, 6, 250)
