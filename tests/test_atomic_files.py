"""write_text_atomically: the old file or the new one, never half of either, and no debris."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecgkt.atomic_files import write_text_atomically


def test_writes_creates_folders_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "result.json"
    assert write_text_atomically(target, "first – ü\n") == target
    write_text_atomically(target, "second\n")
    assert target.read_text(encoding="utf-8") == "second\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["result.json"]


def test_a_failed_write_keeps_the_old_content_and_removes_the_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "result.md"
    target.write_text("old")

    def failing_replace(src: str, dst: object) -> None:
        raise OSError("rename refused")

    monkeypatch.setattr("ecgkt.atomic_files.os.replace", failing_replace)
    with pytest.raises(OSError, match="rename refused"):
        write_text_atomically(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.md"]


def test_without_create_parent_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_text_atomically(tmp_path / "no-bundle" / "sidecar.json", "{}", create_parent=False)
    assert not (tmp_path / "no-bundle").exists()


def test_newline_is_passed_through(tmp_path: Path) -> None:
    target = tmp_path / "table.csv"
    write_text_atomically(target, "a,b\r\n1,2\r\n", newline="")
    assert target.read_bytes() == b"a,b\r\n1,2\r\n"


def test_replacing_folder_swaps_whole_folders(tmp_path: Path) -> None:
    from ecgkt.atomic_files import replacing_folder

    target = tmp_path / "bundle"
    with replacing_folder(target) as staging:
        (staging / "a.txt").write_text("new")
        assert not target.exists()  # nothing at the final path until the block succeeds
    assert (target / "a.txt").read_text() == "new"
    with pytest.raises(RuntimeError), replacing_folder(target) as staging:
        (staging / "a.txt").write_text("half")
        raise RuntimeError("killed")
    assert (target / "a.txt").read_text() == "new"
    with replacing_folder(target) as staging:
        (staging / "b.txt").write_text("newer")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]  # no staging or trash left behind
