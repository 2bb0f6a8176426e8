"""Bank files the command line writes are whole or absent (settlement.commands._write_atomically)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from settlement.commands import _write_atomically


def test_a_file_is_written_whole_and_leaves_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "P2026112301-1.xml"
    _write_atomically(path, b"<Document/>")
    _write_atomically(path, b"<Document>again</Document>")
    assert path.read_bytes() == b"<Document>again</Document>"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_crash_mid_write_keeps_the_old_file_and_no_partial_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "P2026112301-1.xml"
    path.write_bytes(b"<Document>first</Document>")

    def crash(fd: int) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError):
        _write_atomically(path, b"<Document>second, never complete")
    assert path.read_bytes() == b"<Document>first</Document>"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
