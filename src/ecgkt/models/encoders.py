"""The two backbones: Φx (ECG → h_x, S4) and Φm (tabular → h_m, MLP with categorical embeddings).

Φx is the model that survives to inference; Φm exists only during joint-embedding pretraining and in
the multimodal baselines. Neither knows anything about MIMIC: they take tensors.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ecgkt.models.blocks import ResidualS4Block
from ecgkt.models.channel_major import channel_major_applies, encode_channel_major
from ecgkt.models.config import EcgEncoderConfig, TabularEncoderConfig

# Without autograd, EcgEncoder runs large batches in chunks of this many records: at batch 128 and
# d_model 512 each activation is 65–130 MB, falls out of cache and is page-faulted in fresh on every
# allocation; chunks of 16 ran 2.2× faster on CPU (docs/performance.md). Records are independent
# (LayerNorm, no BatchNorm), so the result is the same.
INFERENCE_CHUNK = 16


class EcgEncoder(nn.Module):
    """Φx: (B, in_channels, L) → (B, d_model). Position-wise input projection, residual S4 blocks,
    mean over time. Works for any L (training crops 250 samples; the kernel is built per length).

    `freeze_first(k)` implements the paper's partial freezing during finetuning: the input projection
    and the first k blocks stop learning AND stay in eval mode even when the surrounding
    LightningModule calls `.train()`, so their dropout is off and their output is deterministic —
    exactly the features the pretrained blocks were trained to produce.
    """

    def __init__(self, config: EcgEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.out_dim: int = config.d_model
        # Kept as a Conv1d module (weights (H, leads, 1)) so state dicts and bundles stay compatible;
        # `_encode` applies its weights as a matrix product in the channels-last layout.
        self.input_projection = nn.Conv1d(config.in_channels, config.d_model, kernel_size=1)
        self.layers = nn.ModuleList(ResidualS4Block(config) for _ in range(config.n_layers))
        self._n_frozen = 0
        # Inference (no grad, eval, float32 CPU) runs in the transpose-free channel-major layout
        # (models/channel_major.py); False forces the channels-last path (benchmarks, tests).
        self.channel_major_inference = True

    @property
    def n_frozen(self) -> int:
        """How many S4 blocks `freeze_first` froze (0 = fully trainable)."""
        return self._n_frozen

    def _frozen_modules(self) -> Iterator[nn.Module]:
        if self._n_frozen == 0:
            return
        yield self.input_projection
        yield from list(self.layers)[: self._n_frozen]

    def freeze_first(self, n_layers: int) -> None:
        """Freeze the input projection and the first `n_layers` blocks; 0 unfreezes everything.

        Calling it again replaces the previous setting (it is not cumulative).
        """
        if not 0 <= n_layers <= len(self.layers):
            raise ValueError(f"can freeze between 0 and {len(self.layers)} S4 blocks, got {n_layers}")
        for parameter in self.parameters():
            parameter.requires_grad_(True)
        self._n_frozen = n_layers
        for module in self._frozen_modules():
            for parameter in module.parameters():
                parameter.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True) -> EcgEncoder:
        super().train(mode)
        for module in self._frozen_modules():
            module.eval()
        return self

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 3 or x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"EcgEncoder expects (batch, {self.config.in_channels} leads, samples), got {tuple(x.shape)}"
            )
        chunked = (
            not torch.is_grad_enabled()
            and x.shape[0] > INFERENCE_CHUNK
            and not torch.compiler.is_compiling()
            and not torch.jit.is_tracing()
        )
        if chunked:
            return torch.cat([self._encode(part) for part in x.split(INFERENCE_CHUNK)])
        return self._encode(x)

    def _encode(self, x: Tensor) -> Tensor:
        if self.channel_major_inference and channel_major_applies(self, x):
            return encode_channel_major(self, x)
        # Channels-last from here on: the 1×1 input convolution as a matrix product on (B, L, leads).
        projection = self.input_projection
        h = F.linear(x.transpose(1, 2), projection.weight.squeeze(-1), projection.bias)
        for block in self.layers:
            h = block(h)
        return h.mean(dim=1)


class TabularEncoder(nn.Module):
    """Φm: (numeric (B, Dn) float, categorical (B, Dc) long) → (B, out_dim).

    Each categorical column gets its own embedding table (codes 0..cardinality−1; the store reserves
    the last code for "missing"), the embeddings are concatenated with the numeric columns, then
    `hidden` blocks of BatchNorm → Dropout → Linear → ReLU. Numeric inputs are expected already
    imputed and standardised (the store does that with training-fold statistics).
    Training-mode BatchNorm needs batches of at least 2 records (use drop_last in loaders).
    """

    def __init__(self, n_numeric: int, categorical_cardinalities: Sequence[int], config: TabularEncoderConfig) -> None:
        super().__init__()
        if n_numeric < 0:
            raise ValueError(f"n_numeric must be >= 0, got {n_numeric}")
        if any(card <= 0 for card in categorical_cardinalities):
            raise ValueError(f"categorical cardinalities must be positive, got {list(categorical_cardinalities)}")
        self.config = config
        self.n_numeric = n_numeric
        self.categorical_cardinalities = [int(card) for card in categorical_cardinalities]
        self.embeddings = nn.ModuleList(
            nn.Embedding(card, config.embedding_dim) for card in self.categorical_cardinalities
        )
        in_dim = n_numeric + config.embedding_dim * len(self.categorical_cardinalities)
        if in_dim == 0:
            raise ValueError("TabularEncoder needs at least one numeric or categorical column")
        blocks: list[nn.Module] = []
        width = in_dim
        for hidden in config.hidden:
            blocks += [nn.BatchNorm1d(width), nn.Dropout(config.dropout), nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.mlp = nn.Sequential(*blocks)
        self.in_dim: int = in_dim
        self.out_dim: int = width

    def forward(self, numeric: Tensor, categorical: Tensor) -> Tensor:
        if numeric.dim() != 2 or numeric.shape[1] != self.n_numeric:
            raise ValueError(f"expected numeric of shape (batch, {self.n_numeric}), got {tuple(numeric.shape)}")
        n_categorical = len(self.embeddings)
        if categorical.dim() != 2 or categorical.shape[1] != n_categorical:
            raise ValueError(f"expected categorical of shape (batch, {n_categorical}), got {tuple(categorical.shape)}")
        parts = [numeric.float()]
        columns = zip(self.embeddings, self.categorical_cardinalities, strict=True)
        for column, (embedding, card) in enumerate(columns):
            codes = categorical[:, column].long()
            if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= card):
                raise ValueError(
                    f"categorical column {column} has codes outside 0..{card - 1} "
                    f"(min {int(codes.min())}, max {int(codes.max())})"
                )
            parts.append(embedding(codes))
        return self.mlp(torch.cat(parts, dim=1))
