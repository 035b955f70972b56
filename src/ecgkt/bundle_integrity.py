"""Proof that a bundle is what was written: weight digests, finite tensors, a pinnable bundle digest.

A bundle is handed from the person who trained it to the person who deploys it, so `load_bundle`
checks, before and while anything is allocated:
- the SHA-256 of every weight file against the one recorded in `bundle.json` at save time (a single
  flipped bit is refused: safetensors has no checksum of its own, and a flipped bit in a float
  silently changes predictions);
- the tensor shapes in the safetensors header against the architecture in `bundle.json`, read
  without loading any tensor and compared with a model built on torch's `meta` device, so an
  absurd architecture or a truncated file is refused before memory is allocated for it;
- that every weight is finite (a NaN tensor would make every probability NaN).
Bundles written before digests were recorded load with a `BundleIntegrityWarning`.

`bundle_digest` is ONE hex string over the whole folder (every file's name and SHA-256, in name
order) that a deployer can pin: `ecgkt bundle-hash BUNDLE` prints it, `ecgkt serve --expect-sha256`
refuses any other bundle. Calibrating a bundle rewrites `bundle.json` and so changes the digest.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import Tensor

__all__ = [
    "BundleIntegrityWarning",
    "bundle_digest",
    "check_finite",
    "header_shapes",
    "sha256_file",
    "verify_digest",
    "verify_weight_digests",
]

SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


class BundleIntegrityWarning(UserWarning):
    """A bundle that loads but cannot prove its integrity (no recorded digest, other ecgkt version)."""


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (weights can be hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def bundle_digest(folder: str | os.PathLike[str]) -> str:
    """SHA-256 over `name NUL sha256(file) NL` for every regular file of the folder, in name order."""
    root = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")):
        digest.update(f"{path.name}\0{sha256_file(path)}\n".encode())
    return digest.hexdigest()


def verify_digest(folder: str | os.PathLike[str], expected: str, error: type[Exception]) -> None:
    """Raise `error` unless the folder's `bundle_digest` equals `expected` (hex, case-insensitive)."""
    wanted = expected.strip().lower()
    if not SHA256_PATTERN.match(wanted):
        raise error(f"expected SHA-256 must be 64 hex digits, got {expected!r}")
    actual = bundle_digest(folder)
    if actual != wanted:
        raise error(
            f"{folder}: bundle SHA-256 is {actual}, not the expected {wanted} "
            "(a different or modified bundle; `ecgkt bundle-hash` prints a bundle's digest)"
        )


def verify_weight_digests(
    root: Path, recorded: Mapping[str, str] | None, manifest_name: str, error: type[Exception]
) -> None:
    """Check each weight file against its recorded SHA-256; warn when nothing is recorded (old bundle)."""
    if recorded is None:
        warnings.warn(
            f"{root}: {manifest_name} records no weight digests (a bundle from an older ecgkt): "
            "its weights cannot be checked for changes; re-save it to add them",
            BundleIntegrityWarning,
            stacklevel=3,
        )
        return
    for name, expected in sorted(recorded.items()):
        actual = sha256_file(root / name)
        if actual != expected:
            raise error(
                f"{root / name}: SHA-256 {actual[:16]}… differs from the {expected[:16]}… recorded in "
                f"{manifest_name}: the weights were changed after the bundle was written; refusing to load"
            )


def header_shapes(path: Path, error: type[Exception]) -> dict[str, tuple[int, ...]]:
    """Tensor name → shape from the safetensors header, without reading any tensor data."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as exc:
        raise error(f"{path}: unreadable weights: {exc}") from None


def check_finite(state: Mapping[str, Tensor], path: Path, error: type[Exception]) -> None:
    """Refuse a state dict with a NaN or infinite value in any floating-point tensor."""
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise error(f"{path}: tensor {key} holds NaN or infinite values; refusing to load")
