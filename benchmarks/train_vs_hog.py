"""`fcndetect train` against the classical baseline trained on the same examples: HOG + linear SVM.

In one run, on the same data and the same machine:

1. ``fcndetect train`` with its defaults on ``train_faces/faces_36`` (positives) and
   ``train_faces/nonface_scenes`` (negatives), into a temporary folder (or ``--trained OUT`` reuses a folder);
2. a HOG + linear SVM sliding-window detector trained on the very same crops and photos, the classical way
   (Dalal & Triggs; dlib's and OpenCV's pedestrian detectors): OpenCV's ``HOGDescriptor`` over a 36x36 window
   (6 px cells, 12 px blocks, 9 orientations: 900 features), horizontally flipped positive copies, 60 random
   negative windows per photo (``fcndetect.train.data.random_windows``, same seed), a linear SVM (squared hinge,
   L2, balanced classes, full-batch L-BFGS), then the same two rounds of hard-negative mining (at most 30 false
   detections per photo and round). Detection: ``HOGDescriptor.detectMultiScale`` over the image upsampled
   1.5x (smallest face 24 px, as fcndetect's ``min_size``), 3 scales per octave, 6 px stride, then NMS-max at
   IoU 0.3 (fcndetect.boxes.nms_max), SVM margins as scores;
3. both, plus dlib's pretrained HOG face detector (trained on far more faces) for reference, evaluated by
   ``benchmarks/peers.py``'s machinery on ``dev_faces`` (43 faces): AP, recall at 10/31 FP, ms/image.

    python benchmarks/train_vs_hog.py [--trained OUT] [--iou 0.4 0.5]

The HOG + SVM detector's operating point (``hog-svm@0``) is the SVM's own margin 0; the fcndetect preset's is the
threshold ``fcndetect train`` chose on held-out windows. Needs ``../shared/data``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402

from fcndetect.boxes import nms_max  # noqa: E402
from fcndetect.io.images import to_grayscale  # noqa: E402
from fcndetect.train.data import read_crops, read_photos, random_windows  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
WIN = 36


def make_hog() -> cv2.HOGDescriptor:
    return cv2.HOGDescriptor((WIN, WIN), (12, 12), (6, 6), (6, 6), 9)


def features(hog: cv2.HOGDescriptor, windows: np.ndarray) -> np.ndarray:
    """HOG vectors ``[N, 900]`` of ``[N, 36, 36, 3]`` uint8 gray windows."""
    return np.stack([hog.compute(np.ascontiguousarray(w[..., 0])).ravel() for w in windows])


def fit_svm(pos: np.ndarray, neg: np.ndarray, c: float = 1.0, iters: int = 300) -> tuple[np.ndarray, float]:
    """Linear SVM (squared hinge, L2 weight ``1/c``, classes weighted by their sizes): ``(w [D], b)``."""
    x = torch.from_numpy(np.concatenate([pos, neg])).double()
    y = torch.cat([torch.ones(len(pos)), -torch.ones(len(neg))]).double()
    weight = torch.where(y > 0, 0.5 / len(pos), 0.5 / len(neg)).double()
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=iters, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        margin = torch.clamp(1 - y * (x @ w + b), min=0)
        loss = (weight * margin**2).sum() + 0.5 / (c * len(y)) * (w @ w)
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy(), float(b.detach())


class HogSvm:
    """A trained HOG + linear SVM sliding-window detector."""

    def __init__(self, w: np.ndarray, b: float) -> None:
        self.hog = make_hog()
        self.hog.setSVMDetector(np.append(w, b).astype(np.float32))

    def detect(self, rgb: np.ndarray, hit: float = -0.5, upsample: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
        """``[N, 4]`` xyxy boxes (image pixels) and SVM margins, after NMS-max at IoU 0.3."""
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        big = cv2.resize(gray, None, fx=upsample, fy=upsample, interpolation=cv2.INTER_LINEAR)
        rects, weights = self.hog.detectMultiScale(big, hitThreshold=hit, winStride=(6, 6), padding=(0, 0),
                                                   scale=2 ** (1 / 3), groupThreshold=0)
        r = np.asarray(rects, np.float64).reshape(-1, 4) / upsample
        s = np.asarray(weights, np.float64).reshape(-1)
        if not len(r):
            return np.zeros((0, 4)), np.zeros(0)
        boxes = np.concatenate([r[:, :2], r[:, :2] + r[:, 2:]], axis=1)
        keep = nms_max(torch.from_numpy(boxes).float(), torch.from_numpy(s).float(), torch.zeros(len(s), dtype=torch.long),
                       0.3).numpy()
        return boxes[keep], s[keep]


def train_hog_svm(pos_dir: Path, neg_dir: Path, rounds: int = 2, seed: int = 0) -> tuple[HogSvm, dict[str, float]]:
    rng = np.random.default_rng(seed)
    crops, _, _ = read_crops(str(pos_dir), WIN)
    crops = to_grayscale(crops)
    photos = read_photos([str(neg_dir)])
    neg = to_grayscale(random_windows(photos, 60 * len(photos), WIN, rng))
    hog = make_hog()
    fpos = features(hog, np.concatenate([crops, crops[:, :, ::-1]]))
    fneg = features(hog, neg)
    w, b = fit_svm(fpos, fneg)
    mined_total = 0
    for _ in range(rounds):
        det = HogSvm(w, b)
        hard = []
        for p in photos:
            boxes, scores = det.detect(p.image, hit=0.0)
            for box in boxes[np.argsort(-scores)][:30]:
                x1, y1, x2, y2 = box
                crop = cv2.resize(cv2.cvtColor(p.image, cv2.COLOR_RGB2GRAY)[int(y1):int(y2), int(x1):int(x2)],
                                  (WIN, WIN), interpolation=cv2.INTER_AREA)
                hard.append(hog.compute(crop).ravel())
        if hard:
            fneg = np.concatenate([fneg, np.stack(hard)])
            mined_total += len(hard)
        w, b = fit_svm(fpos, fneg)
    return HogSvm(w, b), {"positives": len(fpos), "negatives": len(fneg), "mined": mined_total}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trained", type=Path, help="an existing `fcndetect train` output folder (default: train now)")
    ap.add_argument("--iou", type=float, nargs="+", default=[0.4, 0.5])
    args = ap.parse_args(argv)
    pos_dir, neg_dir = DATA / "train_faces" / "faces_36", DATA / "train_faces" / "nonface_scenes"
    if not pos_dir.is_dir():
        sys.exit(f"train_vs_hog.py: {pos_dir} not found")
    from fcndetect.evaluate import evaluate

    tmp = tempfile.TemporaryDirectory()
    out = args.trained
    t_cnn = float("nan")
    if out is None:
        from fcndetect.train import TrainOptions, train

        out = Path(tmp.name) / "trained"
        t0 = time.perf_counter()
        train(TrainOptions(positives=[str(pos_dir)], negatives=[str(neg_dir)], output=str(out), label="face"),
              progress=False)
        t_cnn = time.perf_counter() - t0
    t0 = time.perf_counter()
    hog_svm, counts = train_hog_svm(pos_dir, neg_dir)
    t_hog = time.perf_counter() - t0
    print(f"# {peers._machine()} | {peers._versions()}")
    print(f"# training: fcndetect train {t_cnn:.0f} s, HOG + SVM {t_hog:.0f} s ({counts['positives']} positive, "
          f"{counts['negatives']} negative windows, {counts['mined']} mined)")

    names, images, gt = peers.load_data(DATA / "dev_faces", [DATA / "dev_faces" / a for a in peers.DEFAULT_ANNOTATIONS])
    preset = str(out / "preset.toml")
    methods = [peers.make_method(f"fcndetect:{preset}", images), peers.make_method(f"fcndetect:{preset}@preset", images)]
    methods[0].name, methods[1].name = "fcndetect train (tiny)", "fcndetect train (tiny) @preset"
    for point, hit in (("", -0.5), ("@0", 0.0)):
        methods.append(peers.Method(f"hog-svm{point}", f"HOG + linear SVM trained here, margin >= {hit:g}",
                                    lambda i, h=hit: hog_svm.detect(images[i], hit=h)))
    for spec in ("dlib", "mtcnn"):
        try:
            methods.append(peers.make_method(spec, images))
        except peers.SkipMethod as exc:
            print(f"# skipped {spec}: {exc}", file=sys.stderr)
    results = []
    for m in methods:
        ms, dets = peers.run_method(m, len(images), 1)
        report = evaluate(dict(zip(names, dets)), gt, iou_thresholds=args.iou, fp_points=peers.FP_POINTS)
        results.append(peers.MethodResult(m.name, m.settings, ms, report.to_json()))
    for k in range(len(args.iou)):
        print()
        print(peers.markdown_table(results, k))
    print("\nSettings:")
    for r in results:
        print(f"- `{r.name}`: {r.settings}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
