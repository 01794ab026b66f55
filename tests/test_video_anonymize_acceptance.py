"""Anonymised videos on clips made by ../shared/tools/make_clip.py (panned and zoomed photos with an AAC track and
the face boxes of every frame), scored by ../shared/tools/clip_exposure.py. Skips without ../shared."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO.parent / "shared" / "tools"
AFW = REPO.parent / "shared" / "data" / "afw_dev"
CLI = [sys.executable, "-c", "from fcndetect.cli import main; main()"]


def anonymized_clip_figures(tmp_path: Path, variant: str, seed: int = 7) -> dict:
    """Make the clip, run ``fcndetect run CLIP -o OUT --anonymize solid``, and score both output videos."""
    if not (TOOLS / "make_clip.py").is_file() or not AFW.is_dir():
        pytest.skip("../shared/tools and ../shared/data/afw_dev are not available")
    clip, boxes = tmp_path / "clip.mp4", tmp_path / "clip.boxes.json"
    flags = {"hard": ["--hard"], "vfr": ["--vfr"]}.get(variant, [])
    subprocess.run([sys.executable, str(TOOLS / "make_clip.py"), "--images", str(AFW), "--gt",
                    str(AFW / "ground_truth.txt"), "--out", str(clip), "--boxes", str(boxes), "--seed", str(seed),
                    *flags], check=True, capture_output=True)
    out = tmp_path / "out"
    p = subprocess.run(CLI + ["run", str(clip), "-o", str(out), "--anonymize", "solid", "-q"], capture_output=True,
                       text=True)
    assert p.returncode == 0 and p.stderr == "", p.stderr

    def score(video: str, records: bool) -> dict:
        cmd = [sys.executable, str(TOOLS / "clip_exposure.py"), "--source", str(clip), "--anon", str(out / video),
               "--boxes", str(boxes)] + (["--records", str(out / "clip.mp4.jsonl")] if records else [])
        return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)

    return {"anonymized": score("clip.mp4.anonymized.mp4", True), "annotated": score("clip.mp4.annotated.mp4", False)}


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["hard", "plain", "vfr"])
def test_no_face_slips_through_and_the_files_are_faithful(tmp_path, variant):
    f = anonymized_clip_figures(tmp_path, variant)
    anon = f["anonymized"]
    assert anon["exposed_share"] <= 0.005, anon
    assert anon["area_share"] <= 0.6, anon  # deface covers 35-49% of these clips
    for s in f.values():
        assert s["codec"] == "h264" and s["frames_out"] == s["frames_source"], s
        assert s["timestamps_equal"] and s["audio"] is True, s
    if variant == "plain":
        assert anon["mean_id_share"] >= 0.9, anon


if __name__ == "__main__":  # prints the figures: python tests/test_video_anonymize_acceptance.py [variant]
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(anonymized_clip_figures(Path(tmp), sys.argv[1] if len(sys.argv) > 1 else "hard"), indent=1))
