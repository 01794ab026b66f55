"""Shared fixtures: paths to the repo's sample images and to ../shared data (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_images"
SHARED = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def samples() -> Path:
    return SAMPLES


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
