"""Fixtures for the cohort builder tests: tiny handcrafted MIMIC folders and one shared store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from tiny_mimic import TINY_CONFIG, TinyMimic

from ecgkt.cohort.pipeline import build_store
from ecgkt.mimic.layout import MimicFolders


@pytest.fixture(scope="session")
def tiny_folders(tmp_path_factory: pytest.TempPathFactory) -> MimicFolders:
    return TinyMimic.default(30).write(tmp_path_factory.mktemp("tiny_mimic"))


@pytest.fixture(scope="session")
def tiny_store(tiny_folders: MimicFolders, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tiny_folders, tmp_path_factory.mktemp("stores") / "tiny", TINY_CONFIG)


@pytest.fixture
def make_mimic(tmp_path: Path) -> Callable[..., MimicFolders]:
    """Write a TinyMimic after an optional mutation: `make_mimic(mutate=lambda m: ...)`."""

    def make(n_patients: int = 12, mutate: Callable[[TinyMimic], None] | None = None) -> MimicFolders:
        mimic = TinyMimic.default(n_patients)
        if mutate is not None:
            mutate(mimic)
        return mimic.write(tmp_path / "mimic")

    return make
