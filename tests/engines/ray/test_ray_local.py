"""--engine ray without --ray-address: a new local instance for the run, every one of its services listening on
127.0.0.1 only, also when Ray's address file names a head that has died.

The run is a CLI subprocess with its own ``RAY_TMPDIR`` (so the dead head's address file is private to it and
no other Ray instance on the machine is disturbed) and its own ``HOME`` (Ray 2.60 writes ``~/.ray/auth_token``).
While it runs, the test lists the listening TCP sockets of every process that inherited its environment mark.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from PIL import Image

from procnet import end_pids, is_loopback, listening_sockets, marked_pids

pytestmark = [
    pytest.mark.slow,  # each test starts a Ray instance
    pytest.mark.skipif(not Path("/proc/self/environ").exists() or not Path("/proc/net/tcp").exists(),
                       reason="lists processes and sockets through Linux's /proc"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, samples):
    """One ``fcndetect run --engine ray`` with a dead head in ``$RAY_TMPDIR/ray/ray_current_cluster``: its
    exit code, stdout, stderr, seconds, the local engine's stdout, and the sockets seen while it ran."""
    root = tmp_path_factory.mktemp("ray_local")
    images = root / "in"
    images.mkdir()
    face = Image.open(samples / "astronaut.png").convert("RGB")
    for k in range(4):
        face.resize((96 + 16 * k, 96 + 16 * k)).save(images / f"f{k}.png")
    ray_tmp = Path(tempfile.mkdtemp(prefix="fcnray", dir="/tmp"))  # Ray's socket paths must stay short
    (ray_tmp / "ray").mkdir(parents=True)
    dead = f"127.0.0.1:{_free_port()}"  # nothing listens there: the head "has died"
    (ray_tmp / "ray" / "ray_current_cluster").write_text(dead)
    home = root / "home"
    home.mkdir()
    mark = uuid.uuid4().hex
    repo = str(Path(__file__).resolve().parents[3])
    env = {**os.environ, "FCNDETECT_TEST_MARK": mark, "RAY_TMPDIR": str(ray_tmp), "HOME": str(home),
           "PYTHONPATH": repo + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-c", "from fcndetect.cli import main; main()", "run", str(images), "--threads", "1"]
    ref = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd + ["--engine", "ray"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    seen: set[tuple[str, int, str]] = set()
    try:
        while proc.poll() is None and time.monotonic() - t0 < 300:
            seen |= listening_sockets([p for p in marked_pids(mark) if p != proc.pid] + [proc.pid])
            time.sleep(0.2)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        left = end_pids(lambda: marked_pids(mark))
    yield {"rc": proc.returncode, "stdout": out, "stderr": err, "seconds": time.monotonic() - t0,
           "ref": ref, "sockets": seen, "left": left, "dead": dead, "ray_tmp": ray_tmp}
    shutil.rmtree(ray_tmp, ignore_errors=True)


def test_a_dead_head_in_the_address_file_is_not_waited_for(local_run):
    assert local_run["ref"].returncode == 0, local_run["ref"].stderr
    assert local_run["rc"] == 0, local_run["stderr"]
    assert local_run["stdout"] == local_run["ref"].stdout  # the local engine's records
    assert "Traceback" not in local_run["stderr"] and "Failed to connect" not in local_run["stderr"]
    assert local_run["seconds"] < 240  # Ray's retries for a dead GCS last minutes
    assert local_run["left"] == []  # every process of the run's instance ended with it
    # the instance wrote its session into the private RAY_TMPDIR, not /tmp/ray
    assert list((local_run["ray_tmp"] / "ray").glob("session_*"))


def test_every_service_of_the_local_instance_listens_on_loopback_only(local_run):
    sockets = local_run["sockets"]
    names = {name for _addr, _port, name in sockets}
    assert any("gcs_server" in n for n in names) and any("raylet" in n for n in names), sockets
    assert len(sockets) >= 4, sockets  # GCS, raylet (2), the driver's and the workers' own servers
    exposed = sorted(s for s in sockets if not is_loopback(s[0]))
    assert exposed == [], f"listening beyond 127.0.0.1: {exposed}"
