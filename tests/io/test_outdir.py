"""The output folder's own names: reserved run files, name shortening, the scratch folder and the lock."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from fcndetect.io.outdir import (
    LOCK_NAME,
    MAX_NAME_BYTES,
    RUN_FILES,
    FolderInUse,
    OutputLock,
    output_names,
    short_part,
)

SUFFIXES = (".json", ".jsonl", ".annotated", ".heatmap", ".anonymized", ".maps", ".crops", ".frames")


@pytest.mark.parametrize("name", ["run", "detections", "images", "Detections", "detections.fddb",
                                  ".fcndetect", "RUN"])
def test_no_input_output_lands_on_a_run_file(name):
    (safe,) = output_names([name])
    assert safe != name and "~2" in safe
    for suffix in SUFFIXES:
        for ext in ("", os.path.splitext(name)[1]):
            assert (safe + suffix + ext).lower() not in {f.lower() for f in RUN_FILES}


def test_ordinary_names_are_kept_and_clashes_get_a_number():
    assert output_names(["a.png", "run.json", "images.png", "b/x.jpg", "A.PNG", "a.png"]) == [
        "a.png", "run.json", "images.png", "b/x.jpg", "A~2.PNG", "a~3.png"]
    assert output_names(["wider/x.png", "run.json/x.png"]) == ["wider~2/x.png", "run~2.json/x.png"]


@pytest.mark.parametrize("name", ["x" * 246 + ".png", "é" * 200 + ".jpg", "a." + "b" * 300, "c" * 300,
                                  "d" * 150 + "." + "e" * 100])
def test_long_names_are_shortened_deterministically(name):
    short = short_part(name)
    ext = os.path.splitext(short)[1]
    assert len(short.encode()) + len(ext.encode()) <= MAX_NAME_BYTES
    assert short_part(name) == short and short_part(name + "z") != short  # the same name, the same short name
    # every output and its temporary file fit in a file system's 255 bytes
    assert len(f".{short}.anonymized{ext}.0123456789ab.tmp.mp4".encode()) <= 255
    if len(os.path.splitext(name)[1]) <= 16:
        assert ext == os.path.splitext(name)[1]


def test_the_lock_names_its_owner_and_goes_away(tmp_path):
    out = tmp_path / "out"
    with OutputLock(out) as lock:
        assert (out / LOCK_NAME).read_text().strip() == str(os.getpid()) and lock.stale is None
        with pytest.raises(FolderInUse, match=f"in use by process {os.getpid()}"):
            OutputLock(out).acquire()
    assert not out.exists()  # created for the lock, left empty: removed with it
    (tmp_path / "kept").mkdir()
    with OutputLock(tmp_path / "kept"):
        pass
    assert (tmp_path / "kept").is_dir() and not list((tmp_path / "kept").iterdir())


def test_a_stale_lock_is_reported_and_taken_over(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).write_text("999999999\n")  # left by a process that was killed
    with OutputLock(out) as lock:
        assert lock.stale == "999999999"
        assert (out / LOCK_NAME).read_text().strip() == str(os.getpid())


def test_a_live_process_holding_the_lock_is_named(tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", ("import sys, time; from fcndetect.io.outdir import OutputLock; "
                                f"lock = OutputLock({str(out)!r}).acquire(); print('held', flush=True); "
                                "time.sleep(60)")],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderInUse, match=f"in use by process {holder.pid} "):
            OutputLock(out).acquire()
    finally:
        holder.kill()
        holder.wait()
    deadline = time.time() + 10
    while True:  # the kernel released the dead holder's lock: the next run takes it over
        try:
            with OutputLock(out) as lock:
                assert lock.stale == str(holder.pid)
            break
        except FolderInUse:
            assert time.time() < deadline
            time.sleep(0.05)


def test_without_flock_the_pid_in_the_file_decides(tmp_path, monkeypatch):
    import fcntl

    def unsupported(fd, op):
        raise OSError(__import__("errno").ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", unsupported)
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).write_text("999999999\n")  # a process that is gone
    with OutputLock(out) as lock:
        assert lock.stale == "999999999"
        with pytest.raises(FolderInUse, match=f"in use by process {os.getpid()}"):
            OutputLock(out).acquire()
