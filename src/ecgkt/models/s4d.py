"""S4D, the diagonal structured state-space model: its parameters, discretisation and kernel.

Each of the H feature channels runs its own linear state-space model

    x'(t) = A x(t) + B u(t),   y(t) = 2·Re(C x(t)) + D u(t)

with a diagonal complex A (S4D-Lin init: A_n = −½ + iπn, n = 0..N/2−1, one member of each
complex-conjugate pair kept, hence the factor 2·Re), B = 1, learnable complex C and a learnable step
size dt per channel. Zero-order-hold discretisation gives dA = exp(dt·A), dB = (dA − 1)/A·B and the
whole layer becomes a long convolution with kernel K[l] = 2·Re(Σ_n C_n dB_n dA_n^l). The kernel is
computed from a Vandermonde matrix in real arithmetic (exp/cos/sin, no complex tensors), so it runs
under any autocast setting and exports to ONNX; the convolution is done by FFT with zero padding to
2L, so nothing wraps around.

Shapes: H = d_model feature channels, N = d_state real state dimensions (N/2 complex modes),
c = readout channels (2 for a bidirectional layer: forward and backward), L = sequence length.
The layer around this kernel (FFT convolution, caching, skip, output block) is `models/s4.py`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["S4DKernel", "recurrence", "ssm_parameters"]


class S4DKernel(nn.Module):
    """Produces the real convolution kernel of `channels` diagonal SSMs per feature channel.

    Parameters (all trainable): `log_dt` (H,), `log_A_real` (H, N/2) storing log(−Re A) so the real
    part stays negative (a stable system) whatever the optimiser does, `A_imag` (H, N/2) and `C`
    (channels, H, N/2, 2) — the real view of a complex tensor, so weights stay real for safetensors
    and every optimiser. The A and dt parameters are shared by the channels (one set of dynamics, read
    out forwards and backwards); only C differs per channel.
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 8,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        channels: int = 1,
    ) -> None:
        super().__init__()
        if d_model <= 0 or channels <= 0:
            raise ValueError(f"d_model and channels must be positive, got {d_model} and {channels}")
        if d_state <= 0 or d_state % 2:
            raise ValueError(f"d_state must be a positive even number, got {d_state}")
        if not 0.0 < dt_min < dt_max:
            raise ValueError(f"need 0 < dt_min < dt_max, got dt_min={dt_min}, dt_max={dt_max}")
        self.d_model = d_model
        self.d_state = d_state
        self.channels = channels
        n_modes = d_state // 2
        log_dt = torch.rand(d_model) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        self.log_dt = nn.Parameter(log_dt)
        self.log_A_real = nn.Parameter(torch.full((d_model, n_modes), math.log(0.5)))
        self.A_imag = nn.Parameter(math.pi * torch.arange(n_modes, dtype=torch.float32).repeat(d_model, 1))
        self.C = nn.Parameter(torch.view_as_real(torch.randn(channels, d_model, n_modes, dtype=torch.cfloat)))

    def discretize(self) -> tuple[Tensor, Tensor, Tensor]:
        """Complex (dA, dB, C) of the ZOH-discretised system; shapes (H, N/2), (H, N/2), (c, H, N/2).

        Used by the step-by-step reference; `forward` computes the same quantities in real arithmetic.
        """
        dt = torch.exp(self.log_dt)
        A = torch.complex(-torch.exp(self.log_A_real), self.A_imag)
        dA = torch.exp(A * dt[:, None])
        dB = (dA - 1.0) / A
        return dA, dB, torch.view_as_complex(self.C.contiguous())

    def forward(self, length: int) -> Tensor:
        """Kernel K of shape (channels, H, length): K[c, h, l] = 2·Re(Σ_n C[c,h,n] dB[h,n] dA[h,n]^l)."""
        if length <= 0:
            raise ValueError(f"kernel length must be positive, got {length}")
        dt = torch.exp(self.log_dt)[:, None]
        a = -torch.exp(self.log_A_real)  # Re A < 0
        b = self.A_imag
        dta, dtb = a * dt, b * dt  # dt·A = dta + i·dtb
        # dB = (exp(dt·A) − 1) / A, written out as a complex division by A = a + ib.
        decay = torch.exp(dta)
        num_re = decay * torch.cos(dtb) - 1.0
        num_im = decay * torch.sin(dtb)
        denom = a * a + b * b
        dB_re = (num_re * a + num_im * b) / denom
        dB_im = (num_im * a - num_re * b) / denom
        C_re, C_im = self.C[..., 0], self.C[..., 1]
        weight_re = C_re * dB_re - C_im * dB_im  # C·dB, (channels, H, N/2)
        weight_im = C_re * dB_im + C_im * dB_re
        # Vandermonde dA^l = exp(l·dta)·(cos(l·dtb) + i·sin(l·dtb)), (H, N/2, L)
        steps = torch.arange(length, device=dta.device, dtype=dta.dtype)
        magnitude = torch.exp(dta[..., None] * steps)
        phase = dtb[..., None] * steps
        vander_re = magnitude * torch.cos(phase)
        vander_im = magnitude * torch.sin(phase)
        kernel = torch.einsum("chn,hnl->chl", weight_re, vander_re) - torch.einsum("chn,hnl->chl", weight_im, vander_im)
        return 2.0 * kernel


def ssm_parameters(module: nn.Module) -> list[nn.Parameter]:
    """The dt and A parameters of every S4D kernel inside `module` (frozen ones included).

    C, D and the output projection are ordinary weights and are NOT returned: only the parameters
    that set the SSM's time scales get their own learning rate and no weight decay.
    """
    found: list[nn.Parameter] = []
    for sub in module.modules():
        if isinstance(sub, S4DKernel):
            found.extend([sub.log_dt, sub.log_A_real, sub.A_imag])
    return found


def recurrence(dA: Tensor, dB: Tensor, C: Tensor, u: Tensor) -> Tensor:
    """Step-by-step causal SSM: x_k = dA·x_{k−1} + dB·u_k, y_k = 2·Re(Σ_n C_n x_k,n); (B, H, L)."""
    batch, d_model, length = u.shape
    state = torch.zeros(batch, d_model, dA.shape[-1], dtype=torch.complex128, device=u.device)
    dA, dB, C = dA.to(torch.complex128), dB.to(torch.complex128), C.to(torch.complex128)
    outputs = []
    for k in range(length):
        state = dA * state + dB * u[:, :, k, None].to(torch.complex128)
        outputs.append(2.0 * (C * state).sum(-1).real)
    return torch.stack(outputs, dim=-1)
