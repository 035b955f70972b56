"""Diagonal structured state-space layer (S4D-Lin), the sequence mixer of the ECG encoder Φx.

The S4D maths (the state-space model, its discretisation and kernel) is in `models/s4d.py`; this
module turns the kernel into a layer: the FFT convolution with its own autograd, kernel caching,
the D skip and the output block.

Bidirectional layers own a second kernel that is applied to the future: y[t] additionally receives
Σ_{s>t} K_back[s−t−1]·u[s] (the same SSM run over the time-reversed signal), and both are summed.

`ssm_parameters()` returns the dt and A parameters: they set the layer's time scales, are known to
train best with their own (smaller) learning rate and no weight decay (Gu et al.), and the training
code builds a separate optimiser group from them.

Performance (docs/performance.md has the measurements):
- both directions share ONE length-2L kernel and one kernel FFT (`kernel_over_lags`);
- the FFT convolution is a custom autograd function whose backward uses two real FFTs per sequence
  (plus one per channel for the kernel) instead of autograd's complex-to-complex transform;
- when no gradient can flow into the kernel (eval / no_grad, or frozen layers) the kernel spectrum is
  cached and reused until a kernel parameter changes (tracked by tensor version counters, so an
  optimiser step or `load_state_dict` invalidates it) or the layer is put back in training mode;
- `MaskDropout` draws its keep-mask from 16-bit random integers on CPU, ~5× cheaper than bernoulli_.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ecgkt.models.s4d import S4DKernel, recurrence

ConvolutionMode = Literal["fft", "direct"]


class MaskDropout(nn.Dropout):
    """`nn.Dropout` whose CPU float path draws the keep-mask from 15-bit random integers.

    Why: on CPU, `bernoulli_` costs about as much as a 1×1 convolution's worth of elementwise work
    per element; one `random_()` on int32 gives two 15-bit draws, several times cheaper. The drop
    probability is rounded to a multiple of 1/32768 and the survivors are scaled by the exact
    1/(1 − p_rounded), so E[output] = input as with `nn.Dropout`. The mask is materialised once as
    float (0 or the scale): the product and its backward are then one pass each, where a bool mask
    is converted to float again in both directions. Other devices / dtypes, eval mode and
    p = 0 fall back to `nn.Dropout` unchanged (same module type, same state_dict: none).
    """

    def forward(self, input: Tensor) -> Tensor:
        if not self.training or self.p == 0.0 or input.device.type != "cpu" or input.dtype != torch.float32:
            return super().forward(input)
        threshold = round(self.p * 32768)
        n = input.numel()
        bits = torch.empty((n + 1) // 2, dtype=torch.int32).random_().view(torch.int16)[:n]
        # The comparison writes 0/1 straight into a float mask (one pass, no bool → float conversion).
        keep = torch.ge(bits.bitwise_and_(0x7FFF).view(input.shape), threshold, out=torch.empty_like(input))
        return input * keep.mul_(32768.0 / (32768 - threshold))


class _FftConvolution(torch.autograd.Function):
    """y = irfft(rfft(u, n) · K, n)[..., :L] + D·u, evaluated a few records at a time (n = `fft_length(L)`).

    Why chunks: at batch 32 and d_model 512 each spectrum is ~34 MB; transforms and products over
    tensors that size stream from DRAM (and, above glibc's mmap threshold, page-fault fresh memory on
    every call), while a chunk of `FFT_CHUNK_BYTES` of padded signal stays in L2 and reuses the same small
    buffers — 4–5× faster on CPU for the same arithmetic (docs/performance.md). The D skip is folded
    into the write of each chunk's output, saving one more full pass. Channels-last inputs are
    transposed record by record in cache (`_ChunkIO`).

    Autograd through `torch.fft.rfft` would differentiate with a full complex-to-complex transform per
    sequence; here the adjoints are written out (all signals real), chunk by chunk:
      grad_u = irfft(G · conj(K))[..., :L] + D·grad_y     (cross-correlation with the kernel)
      grad_k = irfft(Σ_batch G · conj(U))                  (one transform per channel, batch summed first)
      grad_D = Σ_batch,time grad_y · u
    with G = rfft(grad_y zero-padded to n). Only u is saved: U = rfft(u) is recomputed in the
    backward chunk by chunk, cheaper than storing (and re-reading) the full-batch spectrum.
    `spectrum` may be a cached rfft of `kernel` (eval mode; then no gradient flows into the kernel).
    """

    @staticmethod
    def forward(
        ctx: Any, u: Tensor, kernel: Tensor, spectrum: Tensor | None, skip: Tensor | None, channels_last: bool
    ) -> Tensor:
        io = _ChunkIO(u, channels_last, n_slots=1)
        k_spectrum = spectrum if spectrum is not None else torch.fft.rfft(kernel, n=io.n_fft)
        out = u.new_empty(u.shape)
        for start, stop in io.chunks():
            u_chunk = io.by_channel(u[start:stop])
            y = torch.fft.irfft(torch.fft.rfft(io.padded(u_chunk)).mul_(k_spectrum), n=io.n_fft)[..., : io.length]
            io.write(out, start, y, u_chunk, skip)
        ctx.save_for_backward(u, k_spectrum, skip)
        ctx.channels_last = channels_last
        return out

    @staticmethod
    def backward(ctx: Any, grad_y: Tensor) -> tuple[Tensor | None, Tensor | None, None, Tensor | None, None]:
        u, k_spectrum, skip = ctx.saved_tensors
        grad_y = grad_y.contiguous()
        io = _ChunkIO(u, ctx.channels_last, n_slots=2)
        need_u, need_k, _, need_skip, _ = ctx.needs_input_grad
        grad_u = u.new_empty(u.shape) if need_u else None
        cross = k_spectrum.new_zeros(k_spectrum.shape) if need_k else None
        grad_skip = u.new_zeros(io.n_channels) if need_skip else None
        conj_kernel = k_spectrum.conj_physical() if need_u else None
        for start, stop in io.chunks():
            g_chunk = io.by_channel(grad_y[start:stop], slot=0)
            u_chunk = io.by_channel(u[start:stop], slot=1) if cross is not None or grad_skip is not None else None
            g_spectrum = torch.fft.rfft(io.padded(g_chunk))
            if cross is not None and u_chunk is not None:
                u_spectrum = torch.fft.rfft(io.padded(u_chunk)).conj_physical_()
                cross.add_(u_spectrum.mul_(g_spectrum).sum(0))
            if grad_skip is not None and u_chunk is not None:
                grad_skip.add_((g_chunk * u_chunk).sum((0, 2)))
            if grad_u is not None and conj_kernel is not None:
                correlated = torch.fft.irfft(g_spectrum.mul_(conj_kernel), n=io.n_fft)[..., : io.length]
                io.write(grad_u, start, correlated, g_chunk, skip)
        grad_k = torch.fft.irfft(cross, n=io.n_fft) if cross is not None else None
        return grad_u, grad_k, None, grad_skip, None


# Bytes of zero-padded float signal one FFT chunk may hold: ~L2-sized (1 MiB per core here), so a
# chunk's signal, spectrum and output stay in cache between the transform, the product and the write.
FFT_CHUNK_BYTES = 2 << 20


def _uses_cache_tactics(device: torch.device) -> bool:
    """Chunk the batch and transpose record by record (`_ChunkIO`) only where it pays: on CPU."""
    return device.type == "cpu"


class _ChunkIO:
    """Moves batch chunks between the caller's layout and the (c, H, L) / zero-padded (c, H, n_fft)
    layout the FFTs need, through buffers allocated once per call.

    - `padded`: `rfft(x, n=n_fft)` would allocate, zero-fill and copy a new padded tensor per call;
      here the tail is zeroed once and each chunk only copies its L samples in.
    - channels-last: a (c, L, H) chunk is transposed record by record, each a contiguous 2-D
      transpose, which torch runs blocked (~5× faster than one strided 3-D copy into or out of a
      transposed view, measured); `n_slots` such buffers exist so grad_y and u can coexist.
    - Chunking and per-record copies are CPU cache tactics: on other devices the whole batch is one
      chunk and transposes are single copies (a GPU wants few, large kernels).
    """

    def __init__(self, like: Tensor, channels_last: bool, n_slots: int) -> None:
        self.channels_last = channels_last
        self.n_records = like.shape[0]
        self.n_channels = like.shape[2] if channels_last else like.shape[1]
        self.length = like.shape[1] if channels_last else like.shape[2]
        self.n_fft = fft_length(self.length)
        self.on_cpu = _uses_cache_tactics(like.device)
        per_chunk = max(1, FFT_CHUNK_BYTES // (self.n_channels * self.n_fft * 4)) if self.on_cpu else self.n_records
        self.chunk = max(1, min(self.n_records, per_chunk))
        self._padded = like.new_zeros((self.chunk, self.n_channels, self.n_fft))
        shape = (self.chunk, self.n_channels, self.length)
        self._slots = [like.new_empty(shape) for _ in range(n_slots)] if channels_last else []

    def chunks(self) -> list[tuple[int, int]]:
        return [(start, min(start + self.chunk, self.n_records)) for start in range(0, self.n_records, self.chunk)]

    def by_channel(self, part: Tensor, slot: int = 0) -> Tensor:
        """(c, H, L) values of a chunk: the chunk itself (channels-first) or its transposed copy."""
        if not self.channels_last:
            return part
        target = self._slots[slot][: part.shape[0]]
        if not self.on_cpu:
            return target.copy_(part.transpose(1, 2))
        for record in range(part.shape[0]):
            target[record].copy_(part[record].t())
        return target

    def padded(self, by_channel: Tensor) -> Tensor:
        view = self._padded[: by_channel.shape[0]]
        view[..., : self.length].copy_(by_channel)
        return view

    def write(self, dest: Tensor, start: int, values: Tensor, chunk: Tensor, skip: Tensor | None) -> None:
        """dest[start : start + c] = values + skip·chunk, in dest's layout ((c, H, L) operands)."""
        stop = start + values.shape[0]
        if not self.channels_last:
            if skip is None:
                dest[start:stop] = values
            else:
                torch.addcmul(values, chunk, skip[:, None], out=dest[start:stop])
            return
        result = values if skip is None else torch.addcmul(values, chunk, skip[:, None])
        if not self.on_cpu:
            dest[start:stop].copy_(result.transpose(1, 2))
            return
        for record in range(values.shape[0]):
            dest[start + record].copy_(result[record].t())


def fft_length(length: int) -> int:
    """FFT size for a length-L linear convolution over lags −L..L−1: the smallest power of two ≥ 2L.

    Any size ≥ 2L avoids wrap-around; a power of two is ~1.8× faster than 2L = 500 in pocketfft
    (500 = 2²·5³), measured in docs/performance.md.
    """
    return 1 << (2 * length - 1).bit_length()


def _lags_for_fft(kernel_over_lags: Tensor, n_fft: int) -> Tensor:
    """(…, 2L) kernel in 2L-point circular lag order → the same lags in n_fft-point order (zeros between)."""
    length = kernel_over_lags.shape[-1] // 2
    if n_fft == 2 * length:
        return kernel_over_lags
    gap = kernel_over_lags.new_zeros((*kernel_over_lags.shape[:-1], n_fft - 2 * length))
    return torch.cat([kernel_over_lags[..., :length], gap, kernel_over_lags[..., length:]], dim=-1)


def kernel_spectrum(kernel_over_lags: Tensor) -> Tensor:
    """rfft of the kernel at `fft_length(L)` points: what `fft_convolution` multiplies the input with."""
    n_fft = fft_length(kernel_over_lags.shape[-1] // 2)
    return torch.fft.rfft(_lags_for_fft(kernel_over_lags, n_fft), n=n_fft)


def fft_convolution(
    u: Tensor,
    kernel_over_lags: Tensor,
    spectrum: Tensor | None = None,
    skip: Tensor | None = None,
    channels_last: bool = False,
) -> Tensor:
    """(B, H, L) ∗ (H, 2L) kernel over lags [+ skip[h]·u] → (B, H, L); the SSM of `S4Layer.ssm`.

    `spectrum`, if given, must be `kernel_spectrum(kernel_over_lags)` (the eval-mode cache); `skip`
    (H,) is the D term, applied inside the same pass. `channels_last`: u and the result are
    (B, L, H) instead (the encoder's layout; the transposition happens chunk by chunk, in cache).
    """
    length = u.shape[1] if channels_last else u.shape[-1]
    n_channels = u.shape[-1] if channels_last else u.shape[1]
    if kernel_over_lags.shape[-1] != 2 * length:
        raise ValueError(f"kernel over lags must have length 2L = {2 * length}, got {kernel_over_lags.shape[-1]}")
    # With a cached spectrum the padded kernel is never read: do not build it on every call.
    kernel = _lags_for_fft(kernel_over_lags, fft_length(length)) if spectrum is None else kernel_over_lags
    if skip is not None and skip.shape != (n_channels,):
        raise ValueError(f"skip must have shape ({n_channels},), got {tuple(skip.shape)}")
    result: Tensor = _FftConvolution.apply(u, kernel, spectrum, skip, channels_last)
    return result


class S4Layer(nn.Module):
    """(B, H, L) → (B, H, L): SSM convolution + D skip, GELU, dropout, 1×1 conv to 2H and GLU.

    `forward(x, channels_last=True)` takes and returns (B, L, H) instead: the layout `EcgEncoder`
    runs in, where LayerNorm needs no transposes and the 1×1 convolution is a plain matrix product.

    `convolution` selects how the long convolution is evaluated: "fft" (default, O(L log L)) or
    "direct" (a depthwise `conv1d`, O(L²) but made only of ops every ONNX runtime supports). Both give
    the same result up to float rounding.
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 8,
        bidirectional: bool = True,
        dropout: float = 0.0,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        convolution: ConvolutionMode = "fft",
    ) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.d_model = d_model
        self.bidirectional = bidirectional
        self.convolution: ConvolutionMode = convolution
        self.kernel = S4DKernel(d_model, d_state, dt_min, dt_max, channels=2 if bidirectional else 1)
        self.D = nn.Parameter(torch.randn(d_model))
        self.activation = nn.GELU()
        self.dropout = MaskDropout(dropout)
        self.output_linear = nn.Conv1d(d_model, 2 * d_model, kernel_size=1)
        self.glu = nn.GLU(dim=1)
        # (key, kernel over lags, its spectrum); see `_kernel_and_spectrum`. Not part of state_dict.
        self._kernel_cache: tuple[tuple[object, ...], Tensor, Tensor | None] | None = None
        self._folded_cache: dict[tuple[object, ...], Tensor] | None = None  # see `skip_folded_spectrum`

    def kernel_over_lags(self, length: int) -> Tensor:
        """(H, 2L) kernel for a linear (non-wrapping) FFT convolution of length 2L.

        Index j < L holds the causal lag j; index 2L−d holds the anti-causal lag −d (d ≥ 1), which
        reads K_back[d−1]: the backward SSM sees only strictly future samples, so u[t] is not
        counted twice.
        """
        kernel = self.kernel(length)
        if not self.bidirectional:
            return F.pad(kernel[0], (0, length))
        return torch.cat([kernel[0], kernel[1].flip(-1)], dim=-1)

    def train(self, mode: bool = True) -> S4Layer:
        self._kernel_cache = None
        self._folded_cache = None
        return super().train(mode)

    def _kernel_cache_key(self, length: int) -> tuple[object, ...] | None:
        """None when a gradient may flow into the kernel (then it must be rebuilt every call).

        Otherwise the key names everything the kernel depends on: the length and every kernel
        parameter's storage and version counter (bumped by in-place updates: optimiser steps,
        `load_state_dict`, `copy_`). Inference-mode tensors cannot be used by autograd later, so
        they are cached separately from no_grad ones.
        """
        parameters = list(self.kernel.parameters())
        if torch.is_grad_enabled() and any(p.requires_grad for p in parameters):
            return None
        if torch.compiler.is_compiling() or torch.jit.is_tracing():
            return None  # traced graphs must contain the kernel computation (and fake tensors have no storage)
        versions = tuple((p.data_ptr(), p._version, p.device, p.dtype) for p in parameters)
        return (length, self.convolution, torch.is_inference_mode_enabled(), *versions)

    def _kernel_and_spectrum(self, length: int) -> tuple[Tensor, Tensor | None]:
        """Kernel over lags and (FFT mode) its rfft, from the cache when nothing it depends on changed."""
        key = self._kernel_cache_key(length)
        cached = self._kernel_cache
        if key is not None and cached is not None and cached[0] == key:
            return cached[1], cached[2]
        kernel = self.kernel_over_lags(length)
        spectrum = kernel_spectrum(kernel) if key is not None and self.convolution == "fft" else None
        if key is not None:
            self._kernel_cache = (key, kernel, spectrum)
        return kernel, spectrum

    def skip_folded_spectrum(self, length: int, *, two_sided: bool = False) -> Tensor:
        """Kernel spectrum with the D skip folded in, for inference: K ∗ u + D·u = (K + D·δ₀) ∗ u, and
        the DFT of the lag-0 impulse δ₀ is all ones, so the spectrum is `rfft(K) + D`. One FFT
        product then gives the whole SSM output and no separate skip pass over the activations is
        needed. `two_sided` returns all n_fft bins (the Hermitian extension), for complex FFTs of two
        real signals at once. Cached like the kernel (the key adds D's storage and version); only
        valid when no gradient is needed, which the caller guarantees.
        """
        kernel_key = self._kernel_cache_key(length)
        key = None if kernel_key is None else (*kernel_key, self.D.data_ptr(), self.D._version, two_sided)
        cached = self._folded_cache
        if key is not None and cached is not None and key in cached:
            return cached[key]
        _, spectrum = self._kernel_and_spectrum(length)
        if spectrum is None:
            spectrum = kernel_spectrum(self.kernel_over_lags(length))
        folded = spectrum + self.D[:, None]
        if two_sided:  # bins n/2+1 .. n−1 of a real signal's DFT are the conjugates of bins n/2−1 .. 1
            folded = torch.cat([folded, folded[:, 1:-1].flip(-1).conj()], dim=-1)
        if key is not None:
            # at most the one-sided and the two-sided spectrum of the current parameters
            current = {k: v for k, v in (cached or {}).items() if k[:-1] == key[:-1]}
            self._folded_cache = {**current, key: folded}
        return folded

    def ssm(self, u: Tensor, *, channels_last: bool = False) -> Tensor:
        """The state-space part only: y = K ∗ u + D·u, on (B, H, L) or, with `channels_last`, (B, L, H).

        Always computed in float32 with autocast off: torch.fft has no bf16 kernels, and a bf16
        Vandermonde product would lose the slowly decaying tail of the kernel.
        """
        channel_dim = 2 if channels_last else 1
        if u.dim() != 3 or u.shape[channel_dim] != self.d_model:
            expected = f"(batch, length, {self.d_model})" if channels_last else f"(batch, {self.d_model}, length)"
            raise ValueError(f"S4Layer expects {expected}, got {tuple(u.shape)}")
        length = u.shape[3 - channel_dim]
        with torch.autocast(device_type=u.device.type, enabled=False):
            u32 = u.float()
            kernel, spectrum = self._kernel_and_spectrum(length)
            if self.convolution == "fft":
                y = fft_convolution(u32, kernel, spectrum, skip=self.D, channels_last=channels_last)
            else:
                by_channel = u32.transpose(1, 2) if channels_last else u32
                y = torch.addcmul(_direct_convolution(by_channel, kernel), by_channel, self.D[:, None])
                y = y.transpose(1, 2) if channels_last else y
        return y.to(u.dtype)

    def output(self, y: Tensor, *, channels_last: bool = False) -> Tensor:
        """Position-wise part after the SSM: GELU → dropout → 1×1 conv to 2H → GLU.

        Channels-last runs the 1×1 convolution as one (B·L, H) × (H, 2H) matrix product with the same
        weights: its backward is ~20 % faster on CPU than the convolution's (docs/performance.md).
        """
        activated = self.dropout(self.activation(y))
        if not channels_last:
            return self.glu(self.output_linear(activated))
        projected = F.linear(activated, self.output_linear.weight.squeeze(-1), self.output_linear.bias)
        return F.glu(projected, dim=-1)

    def forward(self, x: Tensor, *, channels_last: bool = False) -> Tensor:
        return self.output(self.ssm(x, channels_last=channels_last), channels_last=channels_last)


def _direct_convolution(u: Tensor, kernel_over_lags: Tensor) -> Tensor:
    """Same linear convolution as the FFT path, as a depthwise conv1d over lags −(L−1)..(L−1)."""
    channels, double_length = kernel_over_lags.shape
    length = double_length // 2
    causal = kernel_over_lags[:, :length]  # lags 0..L−1
    anticausal = kernel_over_lags[:, length + 1 :]  # lags −(L−1)..−1
    by_lag = torch.cat([anticausal, causal], dim=-1)  # index m ↔ lag m − (L−1)
    weight = by_lag.flip(-1).unsqueeze(1)  # conv1d is a cross-correlation
    return F.conv1d(u, weight, padding=length - 1, groups=channels)


@torch.no_grad()
def s4d_recurrence_reference(layer_or_kernel: S4Layer | S4DKernel, u: Tensor) -> Tensor:
    """Slow, obviously-correct reference that runs the discretised SSM as a recurrence (float64).

    - For an `S4DKernel`: returns (B, channels, H, L), channel c being the causal SSM read out with
      C[c] over u — what a causal convolution with `kernel(L)[c]` must equal.
    - For an `S4Layer`: returns what `layer(u)` must return (call it in eval mode so dropout is
      off): forward SSM + (if bidirectional) the backward SSM run over the time-reversed input, + D·u,
      then the layer's own output block.
    """
    if isinstance(layer_or_kernel, S4DKernel):
        dA, dB, C = layer_or_kernel.discretize()
        return torch.stack([recurrence(dA, dB, C[c], u) for c in range(C.shape[0])], dim=1)
    layer = layer_or_kernel
    dA, dB, C = layer.kernel.discretize()
    y = recurrence(dA, dB, C[0], u)
    if layer.bidirectional:
        backward = recurrence(dA, dB, C[1], u.flip(-1)).flip(-1)
        # backward[t] covers u[t..L−1]; the anti-causal part must cover u[t+1..L−1] only.
        y = y + F.pad(backward[..., 1:], (0, 1))
    y = y + u.double() * layer.D.double()[:, None]
    return layer.output(y.to(u.dtype))
