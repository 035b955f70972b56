"""A killed build resumes from its chunk markers and ends equal to an uninterrupted build."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from tiny_mimic import TINY_CONFIG

import ecgkt.cohort.pipeline as pipeline
from ecgkt.cohort.pipeline import build_store
from ecgkt.mimic.layout import MimicFolders
from ecgkt.store import Store


class KilledError(Exception):
    """Stands in for SIGKILL in the middle of the signal stage."""


def _kill_after(n: int, seen: list[int]):  # type: ignore[no-untyped-def]
    def hook(index: int) -> None:
        seen.append(index)
        if len(seen) >= n:
            raise KilledError

    return hook


def _assert_same_store(a: Path, b: Path, ignore: Callable[[dict[str, object]], None] | None = None) -> None:
    """Same signals, tables (values, dtypes, row order) and manifest; `ignore` may edit both manifests."""
    sa, sb = Store.open(a), Store.open(b)
    np.testing.assert_array_equal(np.asarray(sa.signals), np.asarray(sb.signals))
    for name in ("records.parquet", "features.parquet", "diagnoses.parquet", "lab_labels.parquet"):
        ta, tb = pl.read_parquet(a / name), pl.read_parquet(b / name)
        assert ta.schema == tb.schema and ta.equals(tb), name
    ma, mb = (json.loads((p / "manifest.json").read_text()) for p in (a, b))
    for manifest in (ma, mb):
        manifest.pop("created_utc")
        manifest["build_parameters"].pop("workers")
        if ignore is not None:
            ignore(manifest)
    assert ma == mb


def test_killed_build_resumes_without_redoing_work(
    tiny_folders: MimicFolders, tiny_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "store"
    seen: list[int] = []
    with pytest.raises(KilledError):
        build_store(tiny_folders, out, TINY_CONFIG, on_signal_chunk=_kill_after(2, seen))
    staging = tmp_path / "store.partial"
    assert not out.exists() and staging.is_dir()
    assert len(list((staging / ".build" / "signals").glob("chunk_*.json"))) == 2

    def no_second_pass(*args: object, **kwargs: object) -> None:
        raise AssertionError("labevents streamed again on resume")

    monkeypatch.setattr(pipeline, "stream_labevents", no_second_pass)
    resumed: list[int] = []
    build_store(tiny_folders, out, TINY_CONFIG.model_copy(update={"workers": 2}), on_signal_chunk=resumed.append)
    n_chunks = -(-len(Store.open(out)) // TINY_CONFIG.signal_chunk_records)
    assert sorted(resumed) == sorted(set(range(n_chunks)) - set(seen))
    assert not staging.exists()
    _assert_same_store(out, tiny_store)


def test_staging_of_other_settings_is_discarded(tiny_folders: MimicFolders, tmp_path: Path) -> None:
    out = tmp_path / "store"
    with pytest.raises(KilledError):
        build_store(tiny_folders, out, TINY_CONFIG, on_signal_chunk=_kill_after(1, []))
    processed: list[int] = []
    build_store(tiny_folders, out, TINY_CONFIG.model_copy(update={"seed": 7}), on_signal_chunk=processed.append)
    n_chunks = -(-len(Store.open(out)) // TINY_CONFIG.signal_chunk_records)
    assert sorted(processed) == list(range(n_chunks))
    assert Store.open(out).manifest.folds.seed == 7


def test_kill_after_signal_compaction_resumes(
    make_mimic,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    """A record is skipped (too short), so finalise compacts signals.npy; a kill right after that
    must not make the resumed build reopen the array with the old shape."""

    def shorten(mimic) -> None:  # type: ignore[no-untyped-def]
        mimic.ecgs[3].seconds = 8.0

    folders = make_mimic(10, shorten)
    reference = build_store(folders, tmp_path / "reference", TINY_CONFIG)
    out = tmp_path / "store"
    original = pipeline._label_frame

    def die(*args: object, **kwargs: object) -> None:
        raise KilledError

    monkeypatch.setattr(pipeline, "_label_frame", die)
    with pytest.raises(KilledError):
        build_store(folders, out, TINY_CONFIG)
    staged = np.load(tmp_path / "store.partial" / "signals.npy", mmap_mode="r")
    assert staged.shape[0] == len(Store.open(reference))  # already compacted when killed
    del staged
    monkeypatch.setattr(pipeline, "_label_frame", original)
    resumed: list[int] = []
    build_store(folders, out, TINY_CONFIG, on_signal_chunk=resumed.append)
    assert resumed == []  # no signal chunk was read again
    _assert_same_store(out, reference)
