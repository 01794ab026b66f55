"""Atomic writes: permissions from the umask without changing it, no temporary file left behind."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from fcndetect.io.sinks import atomic_write_bytes


def test_atomic_write_never_touches_the_process_umask(tmp_path, monkeypatch):
    old = os.umask(0o027)
    try:
        def forbidden(mask):
            raise AssertionError("os.umask called (it changes the umask of every thread)")

        monkeypatch.setattr(os, "umask", forbidden)
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda k: atomic_write_bytes(tmp_path / "sub" / f"{k}.bin", bytes([k]) * 10), range(16)))
    finally:
        monkeypatch.undo()
        os.umask(old)
    for k in range(16):
        path = tmp_path / "sub" / f"{k}.bin"
        assert path.read_bytes() == bytes([k]) * 10
        assert path.stat().st_mode & 0o777 == 0o640  # 0o666 less the umask, like open(path, "w")
    assert sorted(os.listdir(tmp_path / "sub")) == sorted(f"{k}.bin" for k in range(16))  # no .tmp left


def test_failed_write_leaves_no_temporary(tmp_path):
    (tmp_path / "sub").write_text("")  # a file where the folder must go
    with pytest.raises(FileExistsError):
        atomic_write_bytes(tmp_path / "sub" / "x.bin", b"x")
    target = tmp_path / "d"
    target.mkdir()
    with pytest.raises(IsADirectoryError):  # os.replace onto a folder
        atomic_write_bytes(target, b"x")
    assert sorted(os.listdir(tmp_path)) == ["d", "sub"]
