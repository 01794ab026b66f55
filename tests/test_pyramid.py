from __future__ import annotations

import cv2
import numpy as np
import pytest

from fcndetect.pyramid import pyramid_levels, pyramid_scales, resize_image


def test_scales_ddfd_three_per_octave():
    f = 2 ** (-1 / 3)
    scales = pyramid_scales((400, 300), window=48, min_size=24, scale_factor=f)
    assert scales[0] == pytest.approx(2.0)  # upsample: 24 px objects fill the 48 px window
    assert scales[3] == pytest.approx(1.0) and scales[6] == pytest.approx(0.5)
    # smallest level still holds one window; largest object = shorter side
    assert round(300 * scales[-1]) >= 48 and scales[-1] * f < 48 / 300


def test_max_size_limits_scales():
    scales = pyramid_scales((1000, 1000), window=48, min_size=48, max_size=96, scale_factor=0.5)
    assert scales == pytest.approx([1.0, 0.5])


def test_no_levels_when_image_too_small():
    assert pyramid_scales((20, 20), window=48, min_size=48) == []
    assert pyramid_levels((10000, 20), window=48, min_size=24) == []


@pytest.mark.parametrize("bad", [0.0, 1.0, 1.5, -0.1])
def test_bad_scale_factor(bad):
    with pytest.raises(ValueError):
        pyramid_scales((100, 100), 24, 24, scale_factor=bad)


def test_levels_exact_factors_and_resize():
    lv = pyramid_levels((333, 250), window=24, min_size=30, scale_factor=0.8)[0]
    assert (lv.width, lv.height) == (round(333 * 0.8), round(250 * 0.8))
    assert lv.sx == lv.width / 333 and lv.sy == lv.height / 250
    img = np.random.default_rng(0).integers(0, 255, (250, 333, 3), dtype=np.uint8)
    assert resize_image(img, lv.width, lv.height).shape == (lv.height, lv.width, 3)


def test_pyramid_images_resize_each_level_from_the_one_before():
    """Level k is the image of level k-1 resized (the first, the image's), at every level's size; the old
    way (each level from the image) differs, so the test can tell."""
    from fcndetect.pyramid import pyramid_images

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (301, 401, 3), dtype=np.uint8)
    levels = pyramid_levels((401, 301), window=12, min_size=24, scale_factor=2 ** -0.5)
    got = pyramid_images(img, levels)
    prev = img
    for lv, g in zip(levels, got, strict=True):
        want = cv2.resize(prev, (lv.width, lv.height), interpolation=cv2.INTER_AREA)
        assert g.shape == (lv.height, lv.width, 3) and np.array_equal(g, want)
        prev = want
    direct = cv2.resize(img, (levels[-1].width, levels[-1].height), interpolation=cv2.INTER_AREA)
    assert not np.array_equal(got[-1], direct)


def test_a_scale_factor_near_one_is_refused_not_looped():
    from fcndetect.pyramid import MAX_LEVELS

    with pytest.raises(ValueError, match="pyramid levels"):
        pyramid_scales((4000, 3000), window=12, min_size=12, scale_factor=0.9999999999)
    assert len(pyramid_scales((4000, 3000), window=12, min_size=3, scale_factor=2 ** (-1 / 32))) < MAX_LEVELS
