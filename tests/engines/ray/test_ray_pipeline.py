"""--engine ray: the local engine's bytes, errors and exit codes, resume across engines, an actor killed
mid-run, Ctrl-C, stdout kept clean, no Ray process left behind, and the one-line error without Ray.

One local Ray instance (2 CPUs, the engine's default sizing) serves the in-process tests; two CLI
subprocesses start and stop their own, as a user's run does.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from fcndetect.cli import cli
from fcndetect.engines import ray as ray_engine

pytestmark = pytest.mark.slow  # each test starts a Ray instance

N_GOOD = 12
# --threads 1 on both engines: the thread count can change the last bits of the saved score maps
SETTINGS = ["--min-size", "30", "--heatmap", "--save-maps", "--crops", "--format", "coco", "--threads", "1"]


def _invoke(args: list) -> object:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _outputs(root: Path) -> dict[str, bytes]:
    """Every file of an output folder but run.json (which names the engine)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "run.json"}


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


@pytest.fixture(scope="module")
def folder(tmp_path_factory, samples) -> Path:
    """12 images of mixed sizes from sample_images/, a text file named .jpg and a folder named x.jpg."""
    root = tmp_path_factory.mktemp("ray_in")
    photos = sorted(samples.glob("*.png"))
    for k in range(N_GOOD):
        img = Image.open(photos[k % len(photos)]).convert("RGB")
        side = 160 + 32 * (k // len(photos))
        img.resize((side, side * img.height // img.width)).save(root / f"img{k:02d}{'.jpg' if k % 2 else '.png'}")
    (root / "bad.jpg").write_text("not an image\n")
    (root / "x.jpg").mkdir()
    return root


def _sources(folder: Path) -> list[str]:
    return [str(folder), str(folder / "missing.jpg")]


@pytest.fixture(scope="module")
def local_ref(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("ray_ref") / "out"
    r = _invoke(["run", *_sources(folder), *SETTINGS, "-o", out])
    return r, out


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray instance for the in-process tests (the engine reuses a connected session)."""
    ray = ray_engine.require_ray()
    started = ray_engine.start_ray(ray, None)
    yield ray
    if started:
        ray_engine.stop_ray(ray)


@pytest.fixture(scope="module")
def ray_run(folder, ray_session, tmp_path_factory):
    out = tmp_path_factory.mktemp("ray_run") / "out"
    return _invoke(["run", *_sources(folder), *SETTINGS, "-o", out, "--engine", "ray"]), out


def test_same_bytes_errors_and_exit_code_as_local(local_ref, ray_run):
    ref, ref_out = local_ref
    assert ref.exit_code == 1 and len(_error_lines(ref.stderr)) == 3
    r, out = ray_run
    assert r.exit_code == ref.exit_code
    assert r.stdout == ref.stdout  # the records, in input order
    assert _error_lines(r.stderr) == _error_lines(ref.stderr)
    assert "Traceback" not in r.stderr
    got, want = _outputs(out), _outputs(ref_out)
    assert sorted(got) == sorted(want)
    assert got == want  # detections.jsonl, per-image JSON, annotated, heatmaps, maps, crops, COCO files
    assert len((out / "detections.jsonl").read_text().splitlines()) == N_GOOD + 3
    run = json.loads((out / "run.json").read_text())
    assert run["engine"] == "ray" and json.loads((ref_out / "run.json").read_text())["engine"] == "local"


def _drop_some(out: Path) -> None:
    """Make a finished folder look interrupted: some images not done, no combined files."""
    for name in ("img03.jpg", "img07.jpg", "img10.png"):
        (out / f"{name}.json").unlink()
    for name in ("detections.jsonl", "detections.json", "images.json"):
        (out / name).unlink()


def test_resume_across_engines(folder, local_ref, ray_run, tmp_path):
    _ref, ref_out = local_ref
    for first, then in (("local", "ray"), ("ray", "local")):
        out = tmp_path / f"{first}-{then}"
        shutil.copytree(ref_out if first == "local" else ray_run[1], out)
        _drop_some(out)
        r = _invoke(["run", *_sources(folder), *SETTINGS, "-o", out, "--resume", "--engine", then])
        assert r.exit_code == 1, r.stderr
        assert f"{N_GOOD - 3} already done" in r.stderr
        assert _outputs(out) == _outputs(ref_out), (first, then)
        assert json.loads((out / "run.json").read_text())["engine"] == then


def test_killed_actor_is_restarted_and_the_run_finishes(folder, local_ref, ray_session, tmp_path, monkeypatch):
    _ref, ref_out = local_ref
    pid_file = tmp_path / "pids.txt"
    monkeypatch.setenv(ray_engine.PID_FILE_ENV, str(pid_file))
    killed: list[int] = []

    def kill_first_actor() -> None:
        deadline = time.time() + 120
        while time.time() < deadline:
            pids = pid_file.read_text().split() if pid_file.exists() else []
            if pids:
                killed.append(int(pids[0]))
                os.kill(killed[0], signal.SIGKILL)
                return
            time.sleep(0.005)

    killer = threading.Thread(target=kill_first_actor, daemon=True)
    killer.start()
    out = tmp_path / "out"
    r = _invoke(["run", *_sources(folder), *SETTINGS, "-o", out, "--engine", "ray", "-q"])
    killer.join(5)
    assert killed, "no actor was killed"
    pids = [int(p) for p in pid_file.read_text().split()]
    assert any(p != killed[0] for p in pids[pids.index(killed[0]) + 1:]), "no actor ran after the kill"
    assert r.exit_code == 1
    assert _outputs(out) == _outputs(ref_out)


def _cli_cmd() -> list[str]:
    return [sys.executable, "-c", "from fcndetect.cli import main; main()"]


def _marked_processes(mark: str) -> list[str]:
    """Processes whose environment holds ``mark``: a run's own Ray processes inherit it."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if mark.encode() in (d / "environ").read_bytes():
                    found.append((d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                continue
    return found


def _env(mark: str) -> dict[str, str]:
    repo = str(Path(__file__).resolve().parents[2])
    return {**os.environ, "FCNDETECT_TEST_MARK": mark, "PYTHONPATH": repo + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _wait_gone(mark: str, seconds: float = 15.0) -> list[str]:
    """The run's Ray processes (raylet, GCS server, dashboard agent, workers) still alive after ``seconds``."""
    deadline = time.time() + seconds
    while (left := _marked_processes(mark)) and \
            time.time() < deadline:
        time.sleep(0.2)
    return left


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds Ray's processes through /proc")
def test_stdout_streams_only_records_and_no_ray_process_stays(folder, local_ref):
    ref, _ = local_ref
    mark = uuid.uuid4().hex
    p = subprocess.run(_cli_cmd() + ["run", *_sources(folder), *SETTINGS[:2], "--threads", "1", "--engine", "ray"],
                       capture_output=True, text=True, env=_env(mark), timeout=300)
    assert p.returncode == 1, p.stderr
    assert p.stdout == ref.stdout  # the same records in input order, and nothing else
    assert _error_lines(p.stderr) == _error_lines(ref.stderr)
    assert not _wait_gone(mark)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds Ray's processes through /proc")
def test_ctrl_c_exits_130_without_partial_files_or_ray_processes(folder, tmp_path):
    mark = uuid.uuid4().hex
    out = tmp_path / "out"
    proc = subprocess.Popen(_cli_cmd() + ["run", *_sources(folder), *SETTINGS, "-o", str(out), "--engine", "ray"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(mark))
    deadline = time.time() + 240
    while time.time() < deadline and not list(out.glob("img*.json")) and proc.poll() is None:
        time.sleep(0.01)
    assert any("raylet" in cmd for cmd in _marked_processes(mark))  # the run's own Ray instance is found
    proc.send_signal(signal.SIGINT)
    _stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr.decode(errors="replace")
    assert b"interrupted: rerun with --resume to finish" in stderr and b"Traceback" not in stderr, stderr
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    assert not (out / "detections.jsonl").exists()  # combined files only for a complete run
    for js in out.glob("img*.json"):
        json.loads(js.read_text())  # every written record is whole
    assert not _wait_gone(mark)


def test_without_ray_one_line_error_names_the_install(monkeypatch, folder):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    r = CliRunner().invoke(cli, ["run", str(folder), "--engine", "ray"])
    assert r.exit_code == 2
    assert r.stderr.strip() == "error: --engine ray needs Ray Data: pip install 'fcndetect[ray]'"
    assert r.stdout == ""


def test_a_module_factory_model_is_refused_on_a_cluster_before_anything_is_written(folder, tmp_path):
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["run", str(folder), "-o", str(out), "--engine", "ray", "--ray-address",
                                 "127.0.0.1:1", "--model", "user_models:small", "--weights", "none",
                                 "--input-size", "32"])
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("error: --model user_models:small: a module:factory model") and \
        len(r.stderr.splitlines()) == 1, r.stderr
    assert not out.exists() and r.stdout == ""


def test_the_local_instance_registers_loopback_only(ray_session):
    nodes = [n for n in ray_session.nodes() if n["Alive"]]
    assert nodes and {n["NodeManagerAddress"] for n in nodes} == {"127.0.0.1"}


def test_blocks_hold_many_images_whatever_the_batch_size():
    from fcndetect.engines.ray.pipeline import BLOCK_ROWS, rows_per_block

    assert rows_per_block(1_000_000, 1, 2) == BLOCK_ROWS  # never one block per image
    assert rows_per_block(1_000_000, 5, 2) % 5 == 0 and BLOCK_ROWS <= rows_per_block(1_000_000, 5, 2) < BLOCK_ROWS + 5
    assert rows_per_block(1_000_000, 64, 2) == 64  # at least one whole network call
    assert rows_per_block(16, 1, 2) == 2  # short runs: about four blocks per actor, so every actor gets work
    assert rows_per_block(3, 4, 8) == 4


def test_an_actor_that_cannot_build_its_model_stops_the_run_with_one_line(ray_session, folder):
    import functools

    from fcndetect.config import DetectorConfig
    from fcndetect.detector import remote_detect_batch
    from fcndetect.engines.base import EngineOptions
    from fcndetect.io.sources import expand_sources

    cfg = DetectorConfig(model="mobilenet_v2", weights="/nonexistent/mbv2.pth", classes=("cat",), stages=(),
                         stage_thresholds=())
    items = [it for it in expand_sources([str(folder)]) if it.error is None][:2]
    with pytest.raises(ray_engine.RayEngineError) as info:
        list(ray_engine.iter_detections_ray(functools.partial(remote_detect_batch, cfg), items, EngineOptions(),
                                            ray_engine.RayOptions(actors=(1, 1))))
    line = str(info.value)
    assert line.startswith("the Ray engine failed: ") and line.endswith("/nonexistent/mbv2.pth: weights file not found")
    assert "\n" not in line
