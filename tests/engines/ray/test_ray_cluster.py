"""--engine ray --ray-address against a Ray head whose workers cannot see the driver's model files, with token
authentication on (Ray 2.60), all on one machine.

The head runs in a private mount namespace where the model folder (``HIDDEN``) is an empty tmpfs, as on
another node without a shared filesystem: ``unshare -m`` (root), then ``nsenter ... ray start --head`` on
127.0.0.1 with its own ``--temp-dir`` and ``HOME`` (its token file). The driver, outside, reads ``HIDDEN`` and
must send the model's files itself. The namespaced processes are ended by PID (those in the namespace).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from PIL import Image

from procnet import end_pids, namespace_pids

RAY = Path(sys.executable).with_name("ray")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("nsenter")
                       or not RAY.exists() or not Path("/proc/self/ns/mnt").exists(),
                       reason="needs root, unshare, nsenter and Ray's CLI (a head in a mount namespace)"),
]
REPO = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mounted(pid: int, folder: Path) -> bool:
    try:
        return any(line.split()[4] == str(folder) for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines())
    except OSError:
        return False


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env.update(HOME=str(home), PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               RAY_USAGE_STATS_ENABLED="0", **extra)
    return env


@pytest.fixture(scope="module")
def head(tmp_path_factory, mobilenet_weights, samples):
    """A token-auth head in a namespace hiding ``HIDDEN`` (which holds mbv2.pth and face.onnx for the driver)."""
    pytest.importorskip("onnxruntime")
    root = Path(tempfile.mkdtemp(prefix="fcnhead", dir="/tmp"))  # Ray's socket paths must stay short
    hidden, home, temp = root / "hidden", root / "home", root / "t"
    for d in (hidden, home, temp):
        d.mkdir()
    shutil.copy(mobilenet_weights, hidden / "mbv2.pth")
    export = subprocess.run([sys.executable, "-c", "from fcndetect.cli import main; main()", "export", "face",
                             "--format", "onnx", "-o", str(hidden / "face.onnx")], capture_output=True, text=True,
                            env=_env(home), timeout=300)
    assert export.returncode == 0, export.stderr
    images = root / "in"
    images.mkdir()
    for k, name in enumerate(("astronaut.png", "astronaut.png")):
        img = Image.open(samples / name).convert("RGB")
        img.resize((240 + 40 * k, 240 + 40 * k)).save(images / f"im{k}.png")
    ns_proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "bash", "-c",
                                f"mount -t tmpfs none {hidden} && exec sleep infinity"])
    own_ns = os.readlink("/proc/self/ns/mnt")
    ns = None
    try:
        deadline = time.monotonic() + 30
        while not _mounted(ns_proc.pid, hidden):
            assert ns_proc.poll() is None and time.monotonic() < deadline, "the tmpfs was not mounted"
            time.sleep(0.05)
        ns = os.readlink(f"/proc/{ns_proc.pid}/ns/mnt")
        assert ns != own_ns
        port = _free_port()
        env = _env(home, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_AUTH_MODE="token")
        token = subprocess.run([str(RAY), "get-auth-token", "--generate"], capture_output=True, text=True, env=env,
                               timeout=60)  # into HOME/.ray/auth_token, which the driver shares
        assert (home / ".ray" / "auth_token").is_file(), token.stdout + token.stderr
        start = subprocess.run(["nsenter", "-t", str(ns_proc.pid), "-m", "--", str(RAY), "start", "--head",
                                "--node-ip-address=127.0.0.1", "--port", str(port), "--num-cpus", "2",
                                "--temp-dir", str(temp), "--include-dashboard=false", "--disable-usage-stats"],
                               capture_output=True, text=True, env=env, timeout=180)
        assert start.returncode == 0, start.stdout + start.stderr
        seen = subprocess.run(["nsenter", "-t", str(ns_proc.pid), "-m", "--", "ls", "-A", str(hidden)],
                              capture_output=True, text=True, timeout=30)
        yield {"address": f"127.0.0.1:{port}", "hidden": hidden, "home": home, "images": images,
               "seen_by_head": seen.stdout.split()}
    finally:
        left = end_pids(lambda: [p for p in namespace_pids(ns) if p != ns_proc.pid]) if ns else []
        ns_proc.kill()
        ns_proc.wait()
        shutil.rmtree(root, ignore_errors=True)
        assert left == [], f"processes of the head's namespace survived: {left}"


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from fcndetect.cli import main; main()", "run", *args],
                          capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.parametrize("model", [["--model", "mobilenet_v2", "--weights", "HIDDEN/mbv2.pth", "--classes", "cat"],
                                   ["--model", "HIDDEN/face.onnx"]], ids=["weights", "onnx"])
def test_the_cluster_gives_the_local_records_without_a_shared_filesystem(head, model):
    assert head["seen_by_head"] == []  # the head's workers cannot see the model files
    args = [str(head["images"]), "--threads", "1",
            *(a.replace("HIDDEN", str(head["hidden"])) for a in model)]
    local = _run(args, _env(head["home"]))
    assert local.returncode == 0, local.stderr
    on_ray = _run(args + ["--engine", "ray", "--ray-address", head["address"]],
                  _env(head["home"], RAY_AUTH_MODE="token"))
    assert on_ray.returncode == 0, on_ray.stderr
    assert on_ray.stdout == local.stdout
    assert len(on_ray.stdout.splitlines()) == 2


def test_joining_without_ray_auth_mode_is_one_line_and_exit_2(head):
    r = _run([str(head["images"]), "--engine", "ray", "--ray-address", head["address"]], _env(head["home"]))
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "RAY_AUTH_MODE=token" in lines[0], r.stderr


def test_a_wrong_token_is_one_line_and_exit_2(head):
    r = _run([str(head["images"]), "--engine", "ray", "--ray-address", head["address"]],
             _env(head["home"], RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="0" * 32))
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "refused this driver's token" in lines[0], r.stderr
