"""Architecture configs for the encoders, projectors and heads (pydantic v2, YAML-friendly).

These are pure architecture descriptions: no training hyper-parameters live here, so the same
`EcgEncoderConfig` can be stored in a model bundle and rebuilt at inference without the training code.
`extra="forbid"` makes a typo in a YAML key a clear validation error instead of a silently ignored
setting; the validators reject sizes that would only fail later, deep inside torch. The upper bounds
(`MAX_*`, far above any configuration we train) stop a hostile or mistyped config or bundle from
allocating gigabytes before anything else could check it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_CHANNELS = 64
MAX_WIDTH = 8192  # d_model, hidden sizes, projector sizes
MAX_STATE = 1024
MAX_LAYERS = 64
MAX_HIDDEN_LAYERS = 16


class _ArchitectureConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_hidden_sizes(sizes: list[int]) -> list[int]:
    if any(size <= 0 or size > MAX_WIDTH for size in sizes):
        raise ValueError(f"hidden sizes must all be positive and at most {MAX_WIDTH}, got {sizes}")
    if len(sizes) > MAX_HIDDEN_LAYERS:
        raise ValueError(f"at most {MAX_HIDDEN_LAYERS} hidden layers, got {len(sizes)}")
    return sizes


class EcgEncoderConfig(_ArchitectureConfig):
    """Φx: input projection, `n_layers` residual S4 blocks, global average pooling (design.md §4).

    `d_state` counts real state dimensions as in S4D: `d_state // 2` complex-conjugate modes, so it
    must be even. The initial step sizes dt are drawn log-uniformly from [`dt_min`, `dt_max`]; their
    inverse sets the time scales (in samples) the layer starts out attending to.
    """

    in_channels: int = Field(12, gt=0, le=MAX_CHANNELS)
    d_model: int = Field(512, gt=0, le=MAX_WIDTH)
    d_state: int = Field(8, gt=0, le=MAX_STATE)
    n_layers: int = Field(4, ge=0, le=MAX_LAYERS)
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    bidirectional: bool = True
    dt_min: float = Field(1e-3, gt=0.0)
    dt_max: float = Field(1e-1, gt=0.0)

    @field_validator("d_state")
    @classmethod
    def _even_state(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"d_state must be even (S4D keeps d_state/2 conjugate pairs), got {value}")
        return value

    @model_validator(mode="after")
    def _dt_range(self) -> EcgEncoderConfig:
        if self.dt_min >= self.dt_max:
            raise ValueError(f"dt_min ({self.dt_min}) must be smaller than dt_max ({self.dt_max})")
        return self


class TabularEncoderConfig(_ArchitectureConfig):
    """Φm: categorical embeddings concatenated with numeric columns, then MLP blocks."""

    hidden: list[int] = Field(default_factory=lambda: [128, 128, 128])
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    embedding_dim: int = Field(8, gt=0, le=MAX_WIDTH)

    @field_validator("hidden")
    @classmethod
    def _hidden_positive(cls, value: list[int]) -> list[int]:
        return _check_hidden_sizes(value)


class ProjectorConfig(_ArchitectureConfig):
    """Θx / Θm: map encoder features h into the joint-embedding space z ∈ R^E (E = out_dim)."""

    hidden: int = Field(512, gt=0, le=MAX_WIDTH)
    out_dim: int = Field(512, gt=0, le=MAX_WIDTH)


class HeadConfig(_ArchitectureConfig):
    """Ψy / Ψm: a light MLP from features to one logit per label; `hidden=[]` is a linear probe."""

    hidden: list[int] = Field(default_factory=lambda: [256])
    dropout: float = Field(0.2, ge=0.0, lt=1.0)

    @field_validator("hidden")
    @classmethod
    def _hidden_positive(cls, value: list[int]) -> list[int]:
        return _check_hidden_sizes(value)
