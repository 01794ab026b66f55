"""Combined outputs streamed record by record: the very bytes of the whole-run functions of
fcndetect.io.formats (the oracle), published only on commit, nothing left on discard."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from fcndetect.io import formats
from fcndetect.io.combined import CombinedOutputs, combined_names
from fcndetect.io.sinks import dumps_record


def _record(k: int) -> dict:
    if k % 5 == 3:
        return {"image": f"in/img{k}.jpg", "width": None, "height": None, "detections": [], "error": "corrupt JPEG"}
    dets = []
    for j in range(k % 4):
        det = {"box": [10.0 * j + k, 5.0 + j, 60.5 + k, 70.25 + j], "score": 0.9 - 0.1 * j, "logit": 2.2 - j,
               "label": "face" if j % 2 == 0 else f"extra{k % 3}"}
        if j == 1:
            det["landmarks"] = [[20.0 + i, 30.0 + i] for i in range(5)]
        dets.append(det)
    return {"image": f"in/sub,dir/img {k}.jpg", "width": 640 + k, "height": 480, "detections": dets, "error": None}


RECORDS = [_record(k) for k in range(23)]
NAMES = [f"sub/img{k}.jpg" for k in range(23)]


def _whole_run(fmt: str, records: list[dict]) -> dict[str, str]:
    """What the runner wrote at the end of a run before streaming: the oracle."""
    names = NAMES[:len(records)]
    out = {"detections.jsonl": "".join(dumps_record(r) + "\n" for r in records)}
    if fmt == "coco":
        results, images, cats = formats.coco_results(records, ["face"])
        out["detections.json"] = formats.json_text(results)
        out["images.json"] = formats.json_text(formats.coco_images_json(images, cats))
    elif fmt == "csv":
        out["detections.csv"] = formats.csv_text(records)
    elif fmt == "fddb":
        out["detections.fddb.txt"] = formats.fddb_text(records, names=names)
    elif fmt == "wider":
        out.update({f"wider/{formats.wider_relpath(n)}": formats.wider_text(r, n) for r, n in zip(records, names)})
    return out


def _files(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text(encoding="utf-8") for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.mark.parametrize("fmt", ["jsonl", "coco", "csv", "fddb", "wider"])
@pytest.mark.parametrize("n", [0, 1, 23])
def test_streamed_files_are_the_whole_run_bytes(tmp_path, fmt, n):
    combined = CombinedOutputs(tmp_path, fmt, ["face"], io.StringIO())
    for record, name in zip(RECORDS[:n], NAMES):
        combined.add(record, name)
    assert not any((tmp_path / rel).exists() for rel in combined_names(fmt))  # nothing published yet
    combined.commit()
    assert _files(tmp_path) == _whole_run(fmt, RECORDS[:n])


@pytest.mark.parametrize("fmt", ["coco", "csv", "fddb", "wider"])
def test_stdout_gets_the_format_on_commit_only(fmt):
    out = io.StringIO()
    combined = CombinedOutputs(None, fmt, ["face"], out)
    for record, name in zip(RECORDS, NAMES):
        combined.add(record, name)
    assert out.getvalue() == ""
    combined.commit()
    if fmt == "coco":  # each result also names its image, as there is no images.json beside it
        results, images, _ = formats.coco_results(RECORDS, ["face"])
        names = {im["id"]: im["file_name"] for im in images}
        want = formats.json_text([{**r, "file_name": names[r["image_id"]]} for r in results])
    elif fmt == "wider":
        want = "".join(formats.wider_text(r, n) for r, n in zip(RECORDS, NAMES))
    else:
        want = next(v for k, v in _whole_run(fmt, RECORDS).items() if k != "detections.jsonl")
    assert out.getvalue() == want


def test_discard_leaves_no_file(tmp_path):
    combined = CombinedOutputs(tmp_path, "coco", ["face"], io.StringIO())
    for record, name in zip(RECORDS, NAMES):
        combined.add(record, name)
    combined.discard()
    assert _files(tmp_path) == {}
