"""The channel-major inference forward (models/channel_major.py) against the channels-last forward.

It must compute the same function wherever it is used (eval, no gradient, float32 CPU), and must step
aside everywhere else: with gradients, in training mode (dropout), under autocast, for other dtypes,
for `convolution="direct"` layers and for encoders whose S4 layers were swapped for export.
"""

from __future__ import annotations

from typing import cast

import pytest
import torch

from ecgkt.models import channel_major
from ecgkt.models.config import EcgEncoderConfig
from ecgkt.models.encoders import INFERENCE_CHUNK, EcgEncoder, ResidualS4Block
from ecgkt.models.s4 import S4Layer, kernel_spectrum

torch.set_num_threads(1)


def _encoder(bidirectional: bool = True, seed: int = 0, n_layers: int = 3) -> EcgEncoder:
    torch.manual_seed(seed)
    config = EcgEncoderConfig.model_validate(
        {"d_model": 24, "d_state": 4, "n_layers": n_layers, "bidirectional": bidirectional, "dropout": 0.3}
    )
    encoder = EcgEncoder(config).eval()
    with torch.no_grad():  # non-trivial affine parameters, so a misplaced LayerNorm weight would show
        for block in _blocks(encoder):
            block.norm.weight.uniform_(0.5, 1.5)
            block.norm.bias.uniform_(-0.5, 0.5)
    return encoder


def _blocks(encoder: EcgEncoder) -> list[ResidualS4Block]:
    return [cast(ResidualS4Block, block) for block in encoder.layers]


def _channels_last(encoder: EcgEncoder, x: torch.Tensor) -> torch.Tensor:
    encoder.channel_major_inference = False
    try:
        with torch.no_grad():
            return encoder(x)
    finally:
        encoder.channel_major_inference = True


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize(("batch", "length"), [(1, 250), (3, 37), (INFERENCE_CHUNK + 3, 64), (2, 1000)])
def test_channel_major_equals_channels_last(bidirectional: bool, batch: int, length: int) -> None:
    encoder = _encoder(bidirectional)
    x = torch.randn(batch, 12, length)
    with torch.inference_mode():
        assert channel_major.channel_major_applies(encoder, x[:1])
        fast = encoder(x)
    torch.testing.assert_close(fast, _channels_last(encoder, x), rtol=1e-5, atol=1e-5)


def test_channel_major_is_what_eval_inference_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    encoder = _encoder()
    calls: list[tuple[int, ...]] = []
    original = channel_major.encode_channel_major

    def spy(module: EcgEncoder, x: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(x.shape))
        return original(module, x)

    monkeypatch.setattr("ecgkt.models.encoders.encode_channel_major", spy)
    with torch.no_grad():
        encoder(torch.randn(2, 12, 50))
    assert calls == [(2, 12, 50)]
    encoder.channel_major_inference = False
    with torch.no_grad():
        encoder(torch.randn(2, 12, 50))
    assert len(calls) == 1


@pytest.mark.parametrize("batch", [4, 5])  # paired complex FFTs / one real FFT per record
def test_channel_major_chunks_are_independent_of_the_fft_chunk_size(
    monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    encoder = _encoder()
    x = torch.randn(batch, 12, 40)
    with torch.no_grad():
        whole = encoder(x)
        monkeypatch.setattr(channel_major, "FFT_CHUNK_BYTES", 1)  # one channel per chunk
        torch.testing.assert_close(encoder(x), whole, rtol=1e-6, atol=1e-6)


def test_channel_major_steps_aside_where_it_would_differ() -> None:
    encoder = _encoder()
    x = torch.randn(2, 12, 30)
    with torch.no_grad():
        assert channel_major.channel_major_applies(encoder, x)
        assert not channel_major.channel_major_applies(encoder, x.double())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not channel_major.channel_major_applies(encoder, x)
        encoder.train()
        assert not channel_major.channel_major_applies(encoder, x)  # dropout is active
        encoder.eval()
        _blocks(encoder)[1].s4.dropout.train()  # one submodule in training mode is enough
        assert not channel_major.channel_major_applies(encoder, x)
        encoder.eval()
        _blocks(encoder)[0].s4.convolution = "direct"
        assert not channel_major.channel_major_applies(encoder, x)
        _blocks(encoder)[0].s4.convolution = "fft"
    assert not channel_major.channel_major_applies(encoder, x)  # gradients enabled


def test_training_mode_with_frozen_blocks_keeps_the_autograd_path() -> None:
    encoder = _encoder()
    encoder.freeze_first(1)
    encoder.train()
    x = torch.randn(2, 12, 30)
    with torch.no_grad():
        assert not channel_major.channel_major_applies(encoder, x)


def test_exported_layers_are_not_taken_for_s4_layers() -> None:
    from ecgkt.export.exportable import make_exportable

    encoder = _encoder(n_layers=1)
    copy = cast(EcgEncoder, make_exportable(encoder, 30))
    with torch.no_grad():
        assert not channel_major.channel_major_applies(copy, torch.randn(1, 12, 30))


def test_skip_folded_spectrum_is_the_kernel_spectrum_plus_d_and_follows_d() -> None:
    torch.manual_seed(0)
    layer = S4Layer(6, 4).eval()
    with torch.no_grad():
        expected = kernel_spectrum(layer.kernel_over_lags(20)) + layer.D[:, None]
        torch.testing.assert_close(layer.skip_folded_spectrum(20), expected)
        assert layer.skip_folded_spectrum(20) is layer.skip_folded_spectrum(20)  # cached
        two_sided = layer.skip_folded_spectrum(20, two_sided=True)  # all bins of the same real kernel
        n_fft = 2 * (expected.shape[-1] - 1)
        torch.testing.assert_close(two_sided, torch.fft.fft(torch.fft.irfft(expected, n=n_fft)), rtol=1e-5, atol=1e-5)
        assert layer.skip_folded_spectrum(20) is layer.skip_folded_spectrum(20)  # both stay cached
        layer.D.mul_(2.0)  # in-place change: the version counter moves, the cache must follow
        expected = kernel_spectrum(layer.kernel_over_lags(20)) + layer.D[:, None]
        torch.testing.assert_close(layer.skip_folded_spectrum(20), expected)
        layer.load_state_dict({**layer.state_dict(), "D": torch.zeros(6)})
        torch.testing.assert_close(layer.skip_folded_spectrum(20), kernel_spectrum(layer.kernel_over_lags(20)))
