"""Atomic writes leave the old file intact when writing fails."""

from __future__ import annotations

import json

import pytest

from ast_repro.fileio import atomic_open, atomic_save, atomic_write_json


def test_failed_write_keeps_the_old_file(tmp_path) -> None:
    path = tmp_path / "metrics.json"
    atomic_write_json(path, {"epoch": 1})
    with pytest.raises(RuntimeError):
        with atomic_open(path) as handle:
            handle.write('{"epoch": 2')
            raise RuntimeError("killed mid-write")
    assert json.loads(path.read_text()) == {"epoch": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]  # no temp left


def test_binary_save_and_folders_created(tmp_path) -> None:
    path = tmp_path / "a" / "b" / "ckpt.bin"
    atomic_save(path, lambda handle: handle.write(b"\x00\x01"))
    assert path.read_bytes() == b"\x00\x01"
    with pytest.raises(ValueError, match="modes"):
        with atomic_open(path, "a"):
            pass
