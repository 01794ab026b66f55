"""Per-input isolation on every engine: a failure at any step of one input (decoding, detection, rendering,
writing one of its files) is that input's error record and one stderr line; the others are written."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import fcndetect.runner as runner_module
from fcndetect.cli import cli
from fcndetect.detector import Detector

#: a detection fault hits the image of this size, a rendering fault the image of the other
DETECT_FAULT_SIZE = (90, 70)
RENDER_FAULT_SIZE = (70, 90)
_real_detect_batch = Detector.detect_batch
_real_render = runner_module.render_image_outputs


def _size(image: np.ndarray) -> tuple[int, int]:
    return int(image.shape[1]), int(image.shape[0])


def _faulty_detect(self, images, return_maps=False):
    """``Detector.detect_batch`` that runs out of memory on the image of :data:`DETECT_FAULT_SIZE`."""
    if any(_size(im) == DETECT_FAULT_SIZE for im in images):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
    return _real_detect_batch(self, images, return_maps=return_maps)


def _faulty_factory(config):
    """``remote_detect_batch`` for the Ray actors (whose ``Detector`` is not patched), with the same fault."""
    detect = Detector(config).detect_batch

    def run(images, return_maps=False):
        if any(_size(im) == DETECT_FAULT_SIZE for im in images):
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return detect(images, return_maps=return_maps)

    return run


def _faulty_render(image, dets, ext, options):
    """``render_image_outputs`` with an OpenCV error on the image of :data:`RENDER_FAULT_SIZE`."""
    if _size(image) == RENDER_FAULT_SIZE:
        raise cv2.error("OpenCV(4.10.0) imgcodecs: could not encode")
    return _real_render(image, dets, ext, options)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, samples) -> Path:
    """``a.png`` and ``f.png`` fine; ``b.png`` corrupt, ``c.png`` fails detection, ``d.png`` rendering,
    ``sub/e.png`` writing (a file ``out/sub`` where its folder must go)."""
    root = tmp_path_factory.mktemp("iso") / "in"
    (root / "sub").mkdir(parents=True)
    face = Image.open(samples / "astronaut.png").convert("RGB")
    face.resize((96, 96)).save(root / "a.png")
    (root / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    face.resize(DETECT_FAULT_SIZE).save(root / "c.png")
    face.resize(RENDER_FAULT_SIZE).save(root / "d.png")
    face.resize((96, 96)).save(root / "sub" / "e.png")
    face.resize((80, 80)).save(root / "f.png")
    return root


REASONS = {"b.png": "corrupt PNG file", "c.png": "detection failed: RuntimeError: CUDA out of memory",
           "d.png": "rendering failed: cv2.error: OpenCV", "sub/e.png": "File exists"}


def _run(inputs: Path, out: Path, engine: str, *extra: str):
    out.mkdir()
    (out / "sub").write_text("a file where a folder is needed\n")
    args = ["run", str(inputs), "-o", str(out), "--overwrite", "--format", "csv", "--batch-size", "2",
            "--engine", engine, *extra]
    return CliRunner().invoke(cli, args, catch_exceptions=False)


@pytest.fixture
def faults(monkeypatch):
    monkeypatch.setattr(Detector, "detect_batch", _faulty_detect)
    monkeypatch.setattr(runner_module, "remote_detect_batch", _faulty_factory)
    monkeypatch.setattr(runner_module, "render_image_outputs", _faulty_render)


def _check(r, inputs: Path, out: Path) -> None:
    assert r.exit_code == 1, r.stderr
    assert "Traceback" not in r.stderr
    records = [json.loads(line) for line in r.stdout.splitlines()]
    names = [Path(rec["image"]).relative_to(inputs).as_posix() for rec in records]
    assert names == ["a.png", "b.png", "c.png", "d.png", "f.png", "sub/e.png"]  # input order, every input
    errors = {n: rec["error"] for n, rec in zip(names, records) if rec["error"]}
    assert set(errors) == set(REASONS)
    for name, fragment in REASONS.items():
        assert fragment in errors[name], errors[name]
    assert errors["sub/e.png"].startswith(f"cannot write {out / 'sub' / 'e.png'}")
    lines = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert sorted(lines) == sorted(f"error: {inputs / n}: {e}" for n, e in errors.items())
    for name in ("a.png", "f.png"):
        assert (out / f"{name}.json").is_file() and (out / f"{name}.annotated.png").is_file()
        assert json.loads((out / f"{name}.json").read_text())["error"] is None
    for name in ("b.png", "c.png", "d.png"):
        assert not list(out.glob(f"{name}*")), name  # nothing partial for a failed input
    assert (out / "sub").is_file()
    jsonl = [json.loads(line) for line in (out / "detections.jsonl").read_text().splitlines()]
    assert jsonl == records
    rows = list(csv.DictReader(io.StringIO((out / "detections.csv").read_text())))
    assert {Path(row["image"]).name for row in rows} >= {"a.png", "f.png"}


def test_local_engine_isolates_each_step(inputs, tmp_path, faults):
    out = tmp_path / "out"
    _check(_run(inputs, out, "local"), inputs, out)


@pytest.mark.slow  # starts a Ray instance
def test_ray_engine_isolates_each_step(inputs, tmp_path, faults):
    ray_engine = pytest.importorskip("fcndetect.engines.ray")
    ray = pytest.importorskip("ray")
    # the faults travel to the actors by value (this test module is not importable there)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    started = ray_engine.start_ray(ray_engine.require_ray(), None)
    try:
        out = tmp_path / "out"
        _check(_run(inputs, out, "ray", "--actors", "1"), inputs, out)
    finally:
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        if started:
            ray_engine.stop_ray(ray)


def test_fail_fast_stops_at_the_first_failed_input(inputs, tmp_path, faults):
    out = tmp_path / "out"
    r = _run(inputs, out, "local", "--fail-fast")
    assert r.exit_code == 1 and "Traceback" not in r.stderr
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert [Path(rec["image"]).name for rec in records] == ["a.png", "b.png"]
    assert len([line for line in r.stderr.splitlines() if line.startswith("error: ")]) == 1
    assert not (out / "detections.jsonl").exists()  # combined files only for a complete run (--resume finishes)


def test_acceptance_case_a_file_where_an_output_folder_must_go(tmp_path, samples):
    """Issue 17: ``in/a.png``, ``in/sub/x.png``, ``in/z.png`` and a file ``out/sub``."""
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    face = Image.open(samples / "astronaut.png").convert("RGB").resize((96, 96))
    for name in ("a.png", "sub/x.png", "z.png"):
        face.save(src / name)
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").write_text("")
    r = CliRunner().invoke(cli, ["run", str(src), "-o", str(out), "--overwrite"], catch_exceptions=False)
    assert r.exit_code == 1 and "Traceback" not in r.stderr
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(records) == 3 and [bool(rec["error"]) for rec in records] == [False, False, True]
    assert records[2]["image"].endswith("sub/x.png") and "File exists" in records[2]["error"]
    lines = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "sub/x.png" in lines[0]
    assert (out / "a.png.json").is_file() and (out / "z.png.json").is_file()
    assert len((out / "detections.jsonl").read_text().splitlines()) == 3
