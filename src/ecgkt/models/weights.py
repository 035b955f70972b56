"""The one weights serialiser: a module's state dict to a safetensors file, atomically, and back.

Used for the stage checkpoints (`encoder.safetensors`, `head.safetensors`, ...) and the model
bundle's `weights.safetensors`, so both write tensors the same way (detached, on CPU, contiguous)
and a reader never sees half a file. safetensors, not pickle: loading a file runs no code.
"""

from __future__ import annotations

import os
from pathlib import Path

from safetensors.torch import save_file
from torch import nn

from ecgkt.atomic_files import replacing

__all__ = ["save_weights"]


def save_weights(path: str | os.PathLike[str], module: nn.Module, *, metadata: dict[str, str] | None = None) -> Path:
    """Write `module.state_dict()` to `path` (safetensors) through a temporary file renamed into place."""
    tensors = {key: value.detach().cpu().contiguous() for key, value in module.state_dict().items()}
    with replacing(path, suffix=".safetensors") as temporary:
        save_file(tensors, str(temporary), metadata=metadata)
    return Path(path)
