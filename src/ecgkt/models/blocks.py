"""The residual S4 block shared by the encoder's two forwards (channels-last and channel-major).

Its own module so that `encoders.py` (which picks the forward) and `channel_major.py` (which
reimplements the block's eval-mode maths) both depend on it without depending on each other.
"""

from __future__ import annotations

from torch import Tensor, nn

from ecgkt.models.config import EcgEncoderConfig
from ecgkt.models.s4 import MaskDropout, S4Layer

__all__ = ["ResidualS4Block"]


class ResidualS4Block(nn.Module):
    """x ← LayerNorm(x + Dropout(S4Layer(x))) on channels-last (B, L, H): the post-norm residual
    block of S4 models. Channels-last because LayerNorm normalises the feature axis, which must be
    the last one: the (B, H, L) layout cost two full transposes per block (docs/performance.md)."""

    def __init__(self, config: EcgEncoderConfig) -> None:
        super().__init__()
        self.s4 = S4Layer(
            config.d_model,
            config.d_state,
            bidirectional=config.bidirectional,
            dropout=config.dropout,
            dt_min=config.dt_min,
            dt_max=config.dt_max,
        )
        self.dropout = MaskDropout(config.dropout)
        self.norm = nn.LayerNorm(config.d_model)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x + self.dropout(self.s4(x, channels_last=True)))
