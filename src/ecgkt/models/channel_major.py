"""Inference forward of `EcgEncoder` in the channel-major layout (H, B·L): no transposes at all.

Why a second forward: training runs channels-last (B, L, H) because LayerNorm and the backward want
it, but then every S4 layer must transpose its input to (…, H, L) for the FFT along time and its
output back — eight record-sized transposes per block, ~2 ms of a 17 ms block on one CPU core for a
single ECG (4 windows), which is most of what separated `predict` from its FLOP bound
(docs/performance.md). In the channel-major layout h[c, b·L + t]:

- the FFT along time reads contiguous rows, so a chunk of channels × all records is zero-padded and
  transformed in cache with no transpose;
- with an even number of records, the columns are ordered (record pair, time, record within the
  pair), so the activations of two records ARE one complex signal (`torch.view_as_complex`, no
  copy): one complex FFT of n points transforms both (a real FFT per record costs more on this
  CPU), and because the kernel is real, the inverse FFT of the product returns the two outputs as
  its real and imaginary parts. Every other step treats columns independently, so their order is free;
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

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ecgkt.models.blocks import ResidualS4Block
from ecgkt.models.s4 import FFT_CHUNK_BYTES, S4Layer, fft_length


class EcgEncoder(Protocol):
    """What this forward reads of `ecgkt.models.encoders.EcgEncoder` (typed structurally so the
    encoder module, which calls this one, is not imported back)."""

    input_projection: nn.Conv1d
    layers: nn.ModuleList

    def modules(self) -> Iterator[nn.Module]: ...


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
    batch, _, length = x.shape
    columns = _Columns(batch, length)
    projection = encoder.input_projection
    h = _linear_by_column(columns.from_input(x), projection.weight.squeeze(-1), projection.bias)
    padded = columns.fft_buffer(h)  # shared by the blocks: only [..., :L] is ever written
    for block in encoder.layers:
        h = _block(cast(ResidualS4Block, block), h, columns, padded)
    return columns.mean_over_time(h)


@dataclass(frozen=True)
class _Columns:
    """The order of the B·L columns of the (H, B·L) activations.

    Paired (B even): (record pair, time, record within the pair), so column pairs are complex
    numbers. Otherwise (record, time), and each record is transformed with a real FFT.
    """

    batch: int
    length: int

    @property
    def paired(self) -> bool:
        return self.batch % 2 == 0

    @property
    def n_fft(self) -> int:
        return fft_length(self.length)

    def from_input(self, x: Tensor) -> Tensor:
        """(B, leads, L) → (leads, B·L) in this column order."""
        leads = x.shape[1]
        if self.paired:
            pairs = x.view(self.batch // 2, 2, leads, self.length).permute(2, 0, 3, 1)
            return pairs.reshape(leads, self.batch * self.length)
        return x.permute(1, 0, 2).reshape(leads, self.batch * self.length)

    def mean_over_time(self, h: Tensor) -> Tensor:
        """(H, B·L) → (B, H)."""
        n_channels = h.shape[0]
        if self.paired:
            pooled = h.view(n_channels, self.batch // 2, self.length, 2).mean(dim=2).reshape(n_channels, self.batch)
        else:
            pooled = h.view(n_channels, self.batch, self.length).mean(dim=2)
        return pooled.t().contiguous()

    def fft_buffer(self, h: Tensor) -> Tensor:
        """Zero-padded (channels per chunk, signals, n_fft) buffer: ~FFT_CHUNK_BYTES, so it stays in cache."""
        signals, dtype = (self.batch // 2, torch.complex64) if self.paired else (self.batch, h.dtype)
        item = 2 * h.element_size() if self.paired else h.element_size()
        per_chunk = max(1, min(h.shape[0], FFT_CHUNK_BYTES // (signals * self.n_fft * item)))
        return torch.zeros((per_chunk, signals, self.n_fft), dtype=dtype, device=h.device)


def _linear_by_column(h: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """weight @ h (+ bias per output row): a 1×1 convolution on channel-major activations."""
    if bias is None:
        return torch.mm(weight, h)
    return torch.addmm(bias[:, None], weight, h)


def _block(block: ResidualS4Block, h: Tensor, columns: _Columns, padded: Tensor) -> Tensor:
    """LayerNorm(h + GLU(W · GELU(K ∗ h + D·h) + b)) on (H, B·L)."""
    s4 = block.s4
    activated = _ssm(s4, h, columns, padded)
    torch.ops.aten.gelu_(activated, approximate=s4.activation.approximate)
    projected = _linear_by_column(activated, s4.output_linear.weight.squeeze(-1), s4.output_linear.bias)
    residual = F.glu(projected, dim=0).add_(h)
    return _layer_norm_over_channels(residual, block.norm)


def _ssm(s4: S4Layer, h: Tensor, columns: _Columns, padded: Tensor) -> Tensor:
    """K ∗ h + D·h per channel, a chunk of channels at a time through the zero-padded buffer."""
    n_channels, length, n_fft = h.shape[0], columns.length, columns.n_fft
    activated = torch.empty_like(h)
    spectrum = s4.skip_folded_spectrum(length, two_sided=columns.paired)
    if columns.paired:
        source = torch.view_as_complex(h.view(n_channels, columns.batch // 2, length, 2))
        target = torch.view_as_complex(activated.view(n_channels, columns.batch // 2, length, 2))
    else:
        source = h.view(n_channels, columns.batch, length)
        target = activated.view(n_channels, columns.batch, length)
    per_chunk = padded.shape[0]
    for start in range(0, n_channels, per_chunk):
        stop = min(n_channels, start + per_chunk)
        chunk = padded[: stop - start]
        chunk[..., :length].copy_(source[start:stop])
        if columns.paired:
            convolved = torch.fft.ifft(torch.fft.fft(chunk).mul_(spectrum[start:stop, None, :]))
        else:
            convolved = torch.fft.irfft(torch.fft.rfft(chunk).mul_(spectrum[start:stop, None, :]), n=n_fft)
        target[start:stop].copy_(convolved[..., :length])
    return activated


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
