"""The default preset against facenet-pytorch's MTCNN, in-process, warm, decoding excluded: AP at IoU 0.3 and
the time ratio, measured side by side on the same decoded images.

    python benchmarks/frontier.py [--sets dev_faces afw_dev mosaics] [--threads 2] ["min_size=20" ...]

Each positional argument is a set of :class:`fcndetect.Detector` keyword arguments (Python syntax) applied
on top of ``Detector(None, threshold=0.5)``; none means the default preset itself. Every configuration and
MTCNN (``MTCNN(keep_all=True, device="cpu")``, its defaults) is built once and warmed up with one call on the
first image; then, per image, every detector runs in turn (interleaved, so that load from other processes
hits all of them alike), each timed with ``time.perf_counter`` around the call on an already decoded image.
Detections are ranked by ``Detections.logits`` (MTCNN: its probabilities). ``x MTCNN`` is the configuration's
total time over MTCNN's total on the same set.

Sets: ``dev_faces`` (9 photos, 43 faces; dlib's examples), ``afw_dev`` (108 AFW photos, 257 faces), and
``mosaics`` (40 scenes with pasted ``train_faces`` crops, :mod:`mosaic_faces`), all under ``../shared/data``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import fcndetect  # noqa: F401 - before torch: sets OpenMP's short spin, as the fcndetect command does
import numpy as np
import torch

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
SETS = ("dev_faces", "afw_dev", "mosaics")


def load_set(name: str) -> tuple[list[str], list[np.ndarray], dict[str, np.ndarray]]:
    """``(names, decoded RGB images, ground truth by name)`` of one set."""
    from fcndetect.evaluate import load_annotations
    from fcndetect.io.images import load_image

    if name == "mosaics":
        sys.path.insert(0, str(HERE))
        from mosaic_faces import build

        images, truth = build()
        names = [f"m{k}" for k in range(len(images))]
        return names, images, dict(zip(names, truth))
    folder = DATA / name
    files = [folder / "training.xml", folder / "testing.xml"] if name == "dev_faces" else [folder / "ground_truth.txt"]
    gt: dict[str, np.ndarray] = {}
    for f in files:
        gt.update({k: np.asarray(v, np.float64).reshape(-1, 4) for k, v in load_annotations(f).items()})
    names = sorted(gt)
    return names, [load_image(folder / n) for n in names], gt


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("configs", nargs="*", help="Detector keyword arguments, e.g. \"min_size=20, fusion='sum'\"")
    p.add_argument("--sets", nargs="+", default=["dev_faces", "afw_dev"], choices=SETS)
    p.add_argument("--threads", type=int, default=2, help="torch and OpenCV threads for every detector")
    p.add_argument("--limit", type=int, help="first N images of each set only")
    p.add_argument("--no-mtcnn", action="store_true", help="skip MTCNN (no ratio)")
    args = p.parse_args(argv)
    if not DATA.is_dir():
        sys.exit(f"frontier.py: {DATA} is absent")
    import cv2
    from facenet_pytorch import MTCNN
    from PIL import Image

    from fcndetect import Detector
    from fcndetect.evaluate import evaluate

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    specs = args.configs or [""]
    detectors = [Detector(None, **{"threshold": 0.5, **eval(f"dict({s})")}) for s in specs]  # noqa: S307
    mtcnn = None if args.no_mtcnn else MTCNN(keep_all=True, device="cpu")
    print(f"# threads {args.threads}, IoU 0.3, threshold 0.5, interleaved per image, 1 warm-up call each")
    print("| set | configuration | ms/image | x MTCNN | AP@0.3 | max recall | detections |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for set_name in args.sets:
        names, images, gt = load_set(set_name)
        if args.limit:
            names, images = names[: args.limit], images[: args.limit]
            gt = {n: gt[n] for n in names}
        pil = [Image.fromarray(im) for im in images]
        for det in detectors:
            det.detect_array(images[0])
        if mtcnn is not None:
            mtcnn.detect(pil[0])
        times = [0.0] * len(detectors)
        t_mtcnn = 0.0
        outs: list[dict[str, tuple[np.ndarray, np.ndarray]]] = [{} for _ in detectors]
        out_m: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name, im, pim in zip(names, images, pil):
            for k, det in enumerate(detectors):
                t0 = time.perf_counter()
                d = det.detect_array(im)
                times[k] += time.perf_counter() - t0
                outs[k][name] = (d.boxes.astype(np.float64), d.logits.astype(np.float64))
            if mtcnn is not None:
                t0 = time.perf_counter()
                boxes, probs = mtcnn.detect(pim)
                t_mtcnn += time.perf_counter() - t0
                out_m[name] = ((np.zeros((0, 4)), np.zeros(0)) if boxes is None
                               else (np.asarray(boxes, np.float64), np.asarray(probs, np.float64)))
        rows = [(s or "default preset", t, o) for s, t, o in zip(specs, times, outs)]
        if mtcnn is not None:
            rows.append(("MTCNN (facenet-pytorch)", t_mtcnn, out_m))
        for label, t, out in rows:
            r = evaluate(out, gt, iou_thresholds=(0.3,)).to_json()["results"][0]
            ratio = f"{t / t_mtcnn:.2f}x" if mtcnn is not None else "-"
            print(f"| {set_name} | `{label}` | {1e3 * t / len(names):.1f} | {ratio} | {r['ap']:.3f} | "
                  f"{r['max_recall']:.3f} | {r['n_det']} |", flush=True)
    return 0


if __name__ == "__main__":
    from record import recorded

    raise SystemExit(recorded(__file__, main))
