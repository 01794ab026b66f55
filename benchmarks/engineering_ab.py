"""What the pyramid and crop engineering of issue 18 changed, old way against new, in one run.

    python benchmarks/engineering_ab.py [afw_dev|dev_faces|mosaics] ["Detector kwargs"] [--limit N]

1. Resizing only: every pyramid level of the default preset resized from the photo (the old way) against
   each level from the level before it (:func:`fcndetect.pyramid.pyramid_images`), ms per photo.
2. Whole detections of ``Detector(None, threshold=0.5, **kwargs)`` in four variants, interleaved per photo:
   crops with one bilinear sample per pixel (``cascade.CROP_SAMPLES = 1``, the default) or a 2 x 2 average
   (``2``), and a chained or direct pyramid; ms per photo and AP at IoU 0.3 ranked by logits.

One thread for torch and OpenCV.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv: list[str]) -> int:
    import cv2
    import numpy as np
    import torch

    import fcndetect.cascade as cascade
    import fcndetect.detector as detector
    from fcndetect import Detector
    from fcndetect.evaluate import evaluate
    from fcndetect.pyramid import resize_image
    from frontier import load_set

    limit = None
    if "--limit" in argv:
        i = argv.index("--limit")
        limit = int(argv[i + 1])
        argv = argv[:i] + argv[i + 2 :]
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    set_name = argv[0] if argv else "afw_dev"
    kwargs = eval(f"dict({argv[1]})") if len(argv) > 1 else {}  # noqa: S307 - a benchmark's own command line
    names, images, gt = load_set(set_name)
    if limit:
        names, images = names[:limit], images[:limit]
        gt = {n: gt[n] for n in names}
    det = Detector(None, threshold=0.5, **kwargs)

    def direct(image: np.ndarray, levels: list) -> list[np.ndarray]:
        return [resize_image(image, lv.width, lv.height) for lv in levels]

    chained = detector.iter_pyramid_images
    t_direct = t_chained = 0.0
    for im in images:
        levels = det.levels(im.shape[1], im.shape[0])
        t0 = time.perf_counter()
        direct(im, levels)
        t_direct += time.perf_counter() - t0
        t0 = time.perf_counter()
        list(chained(im, levels))
        t_chained += time.perf_counter() - t0
    n = len(images)
    print(f"# {set_name}: {n} photos, one thread")
    print(f"pyramid resizing: from the photo {1e3 * t_direct / n:.1f} ms, chained {1e3 * t_chained / n:.1f} ms per photo")

    variants = {"1 sample, chained (new)": (1, chained), "2x2 samples, chained": (2, chained),
                "1 sample, direct": (1, direct), "2x2 samples, direct (old)": (2, direct)}
    outs: dict[str, dict] = {k: {} for k in variants}
    times = dict.fromkeys(variants, 0.0)
    det.detect_array(images[0])
    try:
        for name, im in zip(names, images):
            for k, (samples, pyramid) in variants.items():
                cascade.CROP_SAMPLES, detector.iter_pyramid_images = samples, pyramid
                t0 = time.perf_counter()
                d = det.detect_array(im)
                times[k] += time.perf_counter() - t0
                outs[k][name] = (d.boxes.astype(np.float64), d.logits.astype(np.float64))
    finally:
        cascade.CROP_SAMPLES, detector.iter_pyramid_images = 1, chained
    print("| crops, pyramid | ms/photo | AP@0.3 | max recall |\n|---|---:|---:|---:|")
    for k in variants:
        r = evaluate(outs[k], gt, iou_thresholds=(0.3,)).to_json()["results"][0]
        print(f"| {k} | {1e3 * times[k] / n:.0f} | {r['ap']:.3f} | {r['max_recall']:.3f} |")
    return 0


if __name__ == "__main__":
    from record import recorded

    raise SystemExit(recorded(__file__, lambda: main(sys.argv[1:])))
