"""Property: whatever settings file and file names a user throws at `run -o`, the run ends (a hang guard), with
exit 0, 1 or 2, stderr lines that are errors, progress or the summary, and every record of every good input
present and valid, in stdout, in detections.jsonl and in its own file."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from fcndetect.cli import cli
from fcndetect.config import toml_value

pytestmark = pytest.mark.filterwarnings("ignore")

SUMMARY = re.compile(r"^\d+ image\(s\), .*\d+ detection\(s\), \d+ failed input\(s\).* in \d+\.\d s \[model .*\]$")
RECORD_KEYS = ["image", "width", "height", "detections", "error"]
HANG_GUARD_S = 120

# -- settings files: known keys with values in and out of bounds, wrong types, unknown keys, broken TOML
_numbers = st.one_of(st.integers(-10, 10 ** 7), st.floats(allow_nan=True, allow_infinity=True),
                     st.sampled_from([0, 1, 0.5, 0.9999999999, 1e300, -1e300, 2 ** 63 - 1]))
_VALUES = {
    "threshold": _numbers, "nms_iou": _numbers, "min_size": _numbers, "max_size": _numbers,
    "scale_factor": st.one_of(_numbers, st.floats(0.3, 0.98)), "max_det": _numbers, "min_neighbors": _numbers,
    "max_memory_mb": _numbers, "containment": _numbers, "stage_nms_iou": _numbers,
    "rotations": st.lists(_numbers, max_size=3), "stage_thresholds": st.lists(_numbers, max_size=3),
    "nms": st.sampled_from(["max", "avg", "median", 3]), "fusion": st.sampled_from(["last", "sum", "x"]),
    "regress": st.one_of(st.booleans(), st.integers(0, 1)), "flip": st.booleans(), "clip": st.booleans(),
    "grayscale": st.booleans(), "model": st.sampled_from(["face", "face-pnet", "face-rnet", "no-such-model"]),
    "bogus_key": st.integers(),
}
_settings = st.dictionaries(st.sampled_from(sorted(_VALUES)), st.none(), max_size=5).flatmap(
    lambda keys: st.fixed_dictionaries({k: _VALUES[k] for k in keys}))
_config_text = st.one_of(
    _settings.map(lambda d: "".join(f"{k} = {toml_value(v)}\n" for k, v in d.items())),
    st.text(max_size=40),  # anything at all: broken TOML, control characters
)

# -- file names: control characters, unicode, reserved and over-long names (never "/" or NUL)
_name_chars = st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",))
_names = st.one_of(
    st.text(_name_chars, min_size=1, max_size=30),
    st.sampled_from(["run", "detections", "images", ".a.tmp", "wider", ".fcndetect.lock", ".fcndetect.tmp",
                     "run.json", "detections.jsonl", "x" * 246 + ".png", "é" * 120 + ".jpg", "a\nb.png",
                     "-x.png", "@list", "*.png", "csv"]),
).filter(lambda n: n not in (".", "..") and len(n.encode("utf-8")) <= 250)
_inputs = st.lists(st.tuples(_names, st.sampled_from([True, True, False])), min_size=1, max_size=4,
                   unique_by=lambda t: t[0].lower())  # (name, is a good image)


@contextlib.contextmanager
def _hang_guard(seconds: int) -> Iterator[None]:
    def alarm(signum, frame):
        raise TimeoutError(f"the run did not end within {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def image_bytes(samples, tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("prop") / "small.png"
    Image.open(samples / "astronaut.png").convert("RGB").resize((64, 64)).save(path)
    return path.read_bytes()


@settings(max_examples=15, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(config=_config_text, inputs=_inputs, use_config=st.booleans())
@example(config="threshold = 0.5\n", inputs=[("run", True), ("detections", True), ("images", True), (".a.tmp", True),
                                            ("x" * 246 + ".png", True), ("a\nb.png", False)], use_config=True)
def test_random_settings_and_names_never_hang_split_a_line_or_lose_a_record(image_bytes, config, inputs,
                                                                               use_config):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = root / "in"
        folder.mkdir()
        paths, good = [], set()
        for name, ok in inputs:
            path = folder / name
            path.write_bytes(image_bytes if ok else b"not an image\n")
            paths.append(str(path))
            if ok:
                good.add(str(path))
        cfg = root / "settings.toml"
        cfg.write_text(config, encoding="utf-8")
        out = root / "out"
        args = ["run", *paths, "-o", str(out), "--format", "coco,csv"] + (["-c", str(cfg)] if use_config else [])
        with _hang_guard(HANG_GUARD_S):
            r = CliRunner().invoke(cli, args)
        assert r.exit_code in (0, 1, 2), (r.exit_code, r.stderr, r.exception)
        event(f"exit {r.exit_code}")
        for line in r.stderr.splitlines():
            assert line.startswith(("error: ", "progress: ")) or SUMMARY.match(line), r.stderr
        assert "Traceback" not in r.stderr
        if r.exit_code == 2:  # refused before any work: one line, no result written
            assert len(r.stderr.splitlines()) == 1, r.stderr
            assert not (out / "detections.jsonl").exists()
            return
        records = [json.loads(line) for line in r.stdout.split("\n") if line]
        assert [rec["image"] for rec in records] == paths
        text = (out / "detections.jsonl").read_text(encoding="utf-8")
        assert len(text.splitlines()) == len(paths)  # one line a record, whatever line ends a reader knows
        saved = [json.loads(line) for line in text.splitlines()]
        assert saved == records
        assert json.loads((out / "run.json").read_text())["outputs"]["format"] == "coco,csv"
        assert len(json.loads((out / "images.json").read_text())["images"]) == len(good)
        per_input = {}
        for p in out.rglob("*.json"):
            if p.parent == out and p.name in ("run.json", "detections.json", "images.json"):
                continue
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                rec = json.loads(p.read_text(encoding="utf-8"))
                if isinstance(rec, dict) and "image" in rec:
                    per_input[rec["image"]] = rec
        for rec in records:
            assert list(rec) == RECORD_KEYS
            if rec["image"] in good:
                assert rec["error"] is None and (rec["width"], rec["height"]) == (64, 64), rec
                for det in rec["detections"]:
                    x1, y1, x2, y2 = det["box"]
                    assert x1 <= x2 and y1 <= y2 and 0.0 <= det["score"] <= 1.0
                assert per_input[rec["image"]] == rec
            else:
                assert rec["error"] and rec["image"] not in per_input
        assert r.exit_code == (1 if len(good) < len(paths) else 0)
