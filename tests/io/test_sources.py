"""Source expansion: URLs are refused in one line saying what is supported, or kept for an engine that reads them."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from fcndetect.cli import cli
from fcndetect.io.sources import expand_sources


def test_url_gives_one_error_saying_what_is_supported():
    items = list(expand_sources(["https://example.com/a.jpg", "s3://bucket/k.jpg"]))
    assert [it.error.split(":")[0] for it in items] == ["https", "s3"]
    assert all("local image files, folders and glob patterns" in it.error and "--engine ray" in it.error
               for it in items)
    kept = list(expand_sources(["s3://bucket/k.jpg", "http://x/y.jpg"], uri_schemes=("s3",), supported="S"))
    assert kept[0].error is None and kept[0].relative == "k.jpg"
    assert kept[1].error == "http:// is not supported: S"


@pytest.mark.slow  # the console script in a subprocess
def test_url_on_the_command_line(samples):
    for engine in ("local", "ray"):
        r = CliRunner().invoke(cli, ["run", "https://example.com/a.jpg", str(samples / "coffee.png"),
                                     "--engine", engine], catch_exceptions=False)
        if engine == "ray" and "needs Ray Data" in r.stderr:
            continue
        assert r.exit_code == 1 and "Traceback" not in r.stderr
        errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and errors[0].startswith("error: https://example.com/a.jpg: https:// is not supported")
        assert ("s3://" in errors[0]) and ("object-store" in errors[0])
        records = [json.loads(line) for line in r.stdout.splitlines()]
        assert [bool(rec["error"]) for rec in records] == [True, False]


def test_folders_pick_up_videos_only_when_asked(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("a.jpg", "b.MP4", "sub/c.mkv", "sub/d.webm", "e.txt", "f.mpeg"):
        (tmp_path / name).write_bytes(b"x")
    names = [it.relative for it in expand_sources([str(tmp_path)], videos=True)]
    assert names == ["a.jpg", "b.MP4", "f.mpeg", "sub/c.mkv", "sub/d.webm"]
    assert [it.relative for it in expand_sources([str(tmp_path)])] == ["a.jpg"]  # training and the API: images
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "x.mov").write_bytes(b"x")
    assert [it.error for it in expand_sources([str(tmp_path / "v")])] == ["folder contains no image files"]
    assert [it.error for it in expand_sources([str(tmp_path / "v")], videos=True)] == [None]
