"""An ONNX-friendly, numerically equivalent view of a trained ECG model.

Why this exists: the S4 layers convolve with a long kernel through `torch.fft.rfft/irfft`. torch
2.13's TorchScript exporter cannot export that (`aten::fft_rfft` is unsupported); the torch.export
exporter turns it into ONNX `DFT` operators, which onnxruntime runs ~16x slower than PyTorch runs the
model, with ~1e-5 logit error (benchmarks/results/onnx_export.md). The S4 layer's "direct" mode (a
depthwise conv1d over all 2L−1 lags) exports too, but is O(L²) per channel and slower still.

At inference the weights are frozen and the window length is fixed (250 samples), so each layer's
convolution kernel is a constant. We therefore precompute, once, the kernel's spectrum and express
the zero-padded FFT convolution as two real matrix products with constant DFT bases:

    Z = u @ F          F = [cos | −sin] of the 2L-point DFT, first L rows (input is zero-padded)
    Y = Z ⊙ K̂          complex multiply written out on (real, imaginary) halves
    y = Y @ G          G = the inverse real DFT, keeping the first L output samples

This is exactly the same linear map as the FFT path (differences are float32 rounding, ~1e-6), uses
only MatMul/Mul/Add/Slice/Concat, and onnxruntime's GEMM runs it quickly. Everything else in the
model (input projection, GELU, GLU, LayerNorm, pooling, heads) is left untouched.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from ecgkt.models.s4 import S4Layer


def _real_dft_bases(length: int) -> tuple[Tensor, Tensor]:
    """(F, G): forward (L, 2(L+1)) and inverse (2(L+1), L) real bases of the 2L-point DFT, float32.

    Built in float64 and rounded once, so the only float32 error is in the products at run time.
    """
    n_fft = 2 * length
    n_bins = length + 1
    times = np.arange(length)
    bins = np.arange(n_bins)
    angle = 2.0 * np.pi * np.outer(times, bins) / n_fft  # (L, n_bins)
    forward = np.concatenate([np.cos(angle), -np.sin(angle)], axis=1)
    # irfft: x[t] = (1/n) Σ_f w_f (Re X_f cos − Im X_f sin), w = 1 for DC and Nyquist, 2 otherwise.
    weight = np.full(n_bins, 2.0)
    weight[0] = weight[-1] = 1.0
    inverse = np.concatenate([(weight[:, None] * np.cos(angle.T)), -(weight[:, None] * np.sin(angle.T))], axis=0)
    inverse /= n_fft
    return (
        torch.from_numpy(forward.astype(np.float32)),
        torch.from_numpy(inverse.astype(np.float32)),
    )


def _kernel_over_lags(layer: S4Layer, length: int) -> NDArray[np.float64]:
    """(H, 2L) kernel in the circular index of a 2L-point FFT, from the layer's public kernel module.

    Follows the convention documented in `ecgkt.models.s4`: index j < L is the causal lag j
    (forward kernel), index 2L−d is the anti-causal lag −d reading the backward kernel at d−1, so
    the present sample is counted once. The ONNX parity check guards this against drift.
    """
    with torch.no_grad():
        kernel = layer.kernel(length).double().cpu().numpy()  # (channels, H, L)
    lags = np.zeros((kernel.shape[1], 2 * length), dtype=np.float64)
    lags[:, :length] = kernel[0]
    if layer.bidirectional:
        lags[:, length:] = kernel[1][:, ::-1]
    return lags


class DftS4Layer(nn.Module):
    """Drop-in replacement of a trained `S4Layer` for a fixed sequence length, exportable to ONNX.

    Holds the kernel spectrum as constant buffers and reuses the original layer's `D` and its
    position-wise `output` block (GELU → dropout → 1×1 conv → GLU), so only the convolution differs.
    """

    spectrum_re: Tensor
    spectrum_im: Tensor
    forward_basis: Tensor
    inverse_basis: Tensor

    def __init__(self, layer: S4Layer, length: int, forward_basis: Tensor, inverse_basis: Tensor) -> None:
        super().__init__()
        self.length = length
        self.n_bins = length + 1
        spectrum = np.fft.rfft(_kernel_over_lags(layer, length), n=2 * length)  # (H, L+1) complex128
        self.register_buffer("spectrum_re", torch.from_numpy(spectrum.real.astype(np.float32)))
        self.register_buffer("spectrum_im", torch.from_numpy(spectrum.imag.astype(np.float32)))
        self.register_buffer("forward_basis", forward_basis)
        self.register_buffer("inverse_basis", inverse_basis)
        self.D = nn.Parameter(layer.D.detach().clone(), requires_grad=False)
        self.original = layer

    def forward(self, x: Tensor, *, channels_last: bool = False) -> Tensor:
        """Same contract as `S4Layer.forward`: (B, H, L), or (B, L, H) with `channels_last`."""
        u = x.float().transpose(1, 2) if channels_last else x.float()
        z = torch.matmul(u, self.forward_basis)  # (B, H, 2(L+1))
        z_re, z_im = z[..., : self.n_bins], z[..., self.n_bins :]
        y_re = z_re * self.spectrum_re - z_im * self.spectrum_im
        y_im = z_re * self.spectrum_im + z_im * self.spectrum_re
        y = torch.matmul(torch.cat([y_re, y_im], dim=-1), self.inverse_basis)  # (B, H, L)
        y = y + u * self.D[:, None]
        if channels_last:
            y = y.transpose(1, 2)
        return self.original.output(y.to(x.dtype), channels_last=channels_last)


def make_exportable(model: nn.Module, length: int) -> nn.Module:
    """A deep copy of `model` (eval mode, no grad) with every `S4Layer` swapped for a `DftS4Layer`.

    The copy only accepts inputs of exactly `length` samples along time; the original is unchanged.
    """
    if length <= 0:
        raise ValueError(f"sequence length must be positive, got {length}")
    exportable = copy.deepcopy(model).eval()
    for parameter in exportable.parameters():
        parameter.requires_grad_(False)
    forward_basis, inverse_basis = _real_dft_bases(length)
    replacements: list[tuple[nn.Module, str, S4Layer]] = []
    for parent in exportable.modules():
        for name, child in parent.named_children():
            if isinstance(child, S4Layer):
                replacements.append((parent, name, child))
    for parent, name, layer in replacements:
        setattr(parent, name, DftS4Layer(layer, length, forward_basis, inverse_basis))
    return exportable
