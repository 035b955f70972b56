"""Inference forward of `EcgEncoder` in the channel-major layout (H, B·L): no transposes at all.

Why a second forward: training runs channels-last (B, L, H) because LayerNorm and the backward want
it, but then every S4 layer must transpose its input to (…, H, L) for the FFT along time and its
output back — eight record-sized transposes per block, ~2 ms of a 17 ms block on one CPU core for a
single ECG (4 windows), which is most of what separated `predict` from its FLOP bound
(docs/performance.md). In the channel-major layout h[c, b·L + t]:

- the FFT along time reads contiguous rows, so a chunk of channels × all records is zero-padded and
  transformed in cache with no transpose;
- the D skip is folded into the cached kernel spectrum (`S4Layer.skip_folded_spectrum`), and GELU is
  applied to each chunk while it is still in cache;
- the 1×1 output projection is ONE matrix product W (2H × H) @ h (H × B·L), as large as the
  channels-last one and at the same fraction of the matmul peak;
- GLU splits along channels (two contiguous halves), and LayerNorm over channels becomes column
  reductions over a (H, B·L) matrix, which vectorise along the contiguous B·L axis.

Only the math of eval mode is reproduced (dropout is the identity), with no autograd: it is used when
nothing needs a gradient, every module is in eval mode and the tensors are float32 on CPU
(`channel_major_applies`). Results equal the channels-last path up to float rounding (tests compare
them on several shapes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ecgkt.models.s4 import FFT_CHUNK_BYTES, S4Layer, fft_length

if TYPE_CHECKING:
    from ecgkt.models.encoders import EcgEncoder, ResidualS4Block


def channel_major_applies(encoder: EcgEncoder, x: Tensor) -> bool:
    """True when `encode_channel_major` computes exactly what the module's own forward would."""
    if torch.is_grad_enabled() or torch.compiler.is_compiling() or torch.jit.is_tracing():
        return False
    if x.device.type != "cpu" or x.dtype != torch.float32 or torch.is_autocast_enabled("cpu"):
        return False
    if any(module.training for module in encoder.modules()):
        return False
    for block in encoder.layers:
        s4 = getattr(block, "s4", None)
        if type(s4) is not S4Layer or s4.convolution != "fft" or not isinstance(s4.activation, nn.GELU):
            return False
    return True


def encode_channel_major(encoder: EcgEncoder, x: Tensor) -> Tensor:
    """(B, leads, L) → (B, H): input projection, the residual S4 blocks and the mean over time."""
    batch, leads, length = x.shape
    projection = encoder.input_projection
    flat = x.permute(1, 0, 2).reshape(leads, batch * length)
    h = _linear_by_column(flat, projection.weight.squeeze(-1), projection.bias)
    n_fft = fft_length(length)
    per_chunk = max(1, min(h.shape[0], FFT_CHUNK_BYTES // (batch * n_fft * h.element_size())))
    padded = h.new_zeros((per_chunk, batch, n_fft))  # shared by the blocks: only [..., :L] is ever written
    for block in encoder.layers:
        h = _block(cast("ResidualS4Block", block), h, padded)
    return h.view(h.shape[0], batch, length).mean(dim=2).t().contiguous()


def _linear_by_column(h: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """weight @ h (+ bias per output row): a 1×1 convolution on channel-major activations."""
    if bias is None:
        return torch.mm(weight, h)
    return torch.addmm(bias[:, None], weight, h)


def _block(block: ResidualS4Block, h: Tensor, padded: Tensor) -> Tensor:
    """LayerNorm(h + GLU(W · GELU(K ∗ h + D·h) + b)) on (H, B·L); `padded` is the zero-padded
    (channels per chunk, B, n_fft) FFT buffer."""
    s4 = block.s4
    n_channels = h.shape[0]
    per_chunk, batch, n_fft = padded.shape
    length = h.shape[1] // batch
    spectrum = s4.skip_folded_spectrum(length)
    activated = torch.empty_like(h)
    source = h.view(n_channels, batch, length)
    target = activated.view(n_channels, batch, length)
    approximate = s4.activation.approximate
    for start in range(0, n_channels, per_chunk):
        stop = min(n_channels, start + per_chunk)
        chunk = padded[: stop - start]
        chunk[..., :length].copy_(source[start:stop])
        product = torch.fft.rfft(chunk).mul_(spectrum[start:stop, None, :])
        out = target[start:stop]
        out.copy_(torch.fft.irfft(product, n=n_fft)[..., :length])
        torch.ops.aten.gelu_(out, approximate=approximate)
    projected = _linear_by_column(activated, s4.output_linear.weight.squeeze(-1), s4.output_linear.bias)
    residual = F.glu(projected, dim=0).add_(h)
    return _layer_norm_over_channels(residual, block.norm)


def _layer_norm_over_channels(h: Tensor, norm: nn.LayerNorm) -> Tensor:
    """nn.LayerNorm over dim 0 of (H, N), in place on `h`: two-pass (centred) variance as in torch."""
    n_channels = h.shape[0]
    mean = h.sum(dim=0).div_(n_channels)
    centred = h.sub_(mean)
    # square().sum(): torch.var_mean / linalg.vector_norm over dim 0 take 3-10× longer (strided reductions)
    inverse_std = centred.square().sum(dim=0).div_(n_channels).add_(norm.eps).rsqrt_()
    normalised = centred.mul_(inverse_std)
    if norm.weight is not None:
        normalised.mul_(norm.weight[:, None])
    if norm.bias is not None:
        normalised.add_(norm.bias[:, None])
    return normalised
