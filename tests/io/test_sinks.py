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


def test_a_format_is_one_registered_class(tmp_path, samples):
    """Adding an output format touches one declaration: the CLI's choices, the names inputs may not take and
    the run's combined outputs all follow the registry."""
    from click.testing import CliRunner

    from fcndetect.cli import cli
    from fcndetect.io.combined import run_files, sink_names
    from fcndetect.io.sinks import SINKS, Sink, register_sink

    class Summary(Sink):
        name, files = "summary", ("summary.tsv",)

        def __init__(self, out, categories, frames):
            super().__init__(out, categories, frames)
            self.fh = out.file("summary.tsv") if out.folder is not None else out.stdout()

        def add(self, record, name):
            self.fh.write(f"{name}\t{len(record['detections'])}\n")

    register_sink(Summary)
    try:
        assert "summary" in sink_names() and "summary.tsv" in run_files()
        src = tmp_path / "summary"  # its outputs would be summary.json, beside summary.tsv: renamed
        src.write_bytes((samples / "astronaut.png").read_bytes())
        r = CliRunner().invoke(cli, ["run", str(src), "-o", str(tmp_path / "out"), "--format", "summary,csv", "-q"])
        assert r.exit_code == 0, r.stderr
        assert (tmp_path / "out" / "summary.tsv").read_text() == "summary~2\t1\n"
        assert (tmp_path / "out" / "detections.csv").is_file() and (tmp_path / "out" / "summary~2.json").is_file()
        r = CliRunner().invoke(cli, ["run", str(src), "--format", "summary"])
        assert r.exit_code == 0 and r.stdout == "summary\t1\n"
    finally:
        del SINKS["summary"]
    r = CliRunner().invoke(cli, ["run", str(src), "--format", "summary"])
    assert r.exit_code == 2 and "unknown format 'summary'" in r.stderr
