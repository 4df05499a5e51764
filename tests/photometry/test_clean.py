"""CLEAN (:mod:`csst_photoz.photometry.clean`) against sep's ``clean=True`` (SExtractor's CLEAN)."""

import numpy as np
import pytest
import sep

from csst_photoz.photometry.clean import clean_sources
from csst_photoz.photometry.detection import detect_sources, sextractor_threshold


def bright_galaxies_and_faint_ones(seed, shape=(256, 256)):
    """Three bright exponential discs (wide wings) and twenty faint Gaussians in unit noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.indices(shape)
    image = rng.normal(0.0, 1.0, shape)
    for _ in range(3):
        x0, y0 = rng.uniform(40, 216, 2)
        flux, scale = rng.uniform(2e4, 1e5), rng.uniform(3, 6)
        image += flux * np.exp(-np.hypot(xx - x0, 1.3 * (yy - y0)) / scale) / (2 * np.pi * scale**2)
    for _ in range(20):
        x0, y0 = rng.uniform(5, 250, 2)
        flux, sigma = rng.uniform(30, 300), rng.uniform(1, 2.5)
        profile = np.exp(-0.5 * ((xx - x0) ** 2 + (yy - y0) ** 2) / sigma**2)
        image += flux * profile / (2 * np.pi * sigma**2)
    return image


def survivors(found):
    return clean_sources(
        found.x, found.y, found.a, found.b, found.theta, filtered_flux=found.filtered_flux,
        area=found.area.astype(float), threshold=found.threshold,
        clean_excess=found.clean_excess, abcor=found.abcor,
    )  # fmt: skip


def test_clean_removes_what_seps_clean_removes():
    cleaned = 0
    for seed in range(4):
        image = bright_galaxies_and_faint_ones(seed)
        raw = sep.extract(image, 1.5, err=1.0, clean=False, deblend_cont=1.0)
        theirs = sep.extract(image, 1.5, err=1.0, clean=True, deblend_cont=1.0)
        found = detect_sources(
            image, np.ones_like(image), threshold_sigma=sextractor_threshold(1.5),
            deblend_cont=1.0,
        )  # fmt: skip
        assert len(found) == len(raw)
        keep = survivors(found)
        ours = np.c_[found.x[keep], found.y[keep]]
        assert len(ours) == len(theirs)
        distance = np.hypot(*(ours[:, None, :] - np.c_[theirs["x"], theirs["y"]][None]).T)
        assert (distance.min(axis=0) < 0.5).all()
        cleaned += len(raw) - len(theirs)
    assert cleaned >= 2  # the scenes do exercise CLEAN


def test_a_faint_peak_on_a_bright_wing_is_cleaned_an_isolated_one_is_not():
    image = bright_galaxies_and_faint_ones(0)
    found = detect_sources(image, np.ones_like(image), threshold_sigma=4.0, deblend_cont=1.0)
    keep = survivors(found)
    brightest = int(np.argmax(found.filtered_flux))
    assert keep[brightest]
    eaten = np.flatnonzero(~keep)
    assert eaten.size
    distance = np.hypot(found.x[eaten] - found.x[brightest], found.y[eaten] - found.y[brightest])
    lone = np.hypot(found.x - found.x[brightest], found.y - found.y[brightest]) > 100
    assert keep[lone & (found.filtered_flux < found.filtered_flux[brightest])].all()
    assert distance.min() < 10 * (found.a[eaten].max() + found.a[brightest])


def test_bad_clean_param_and_tiny_inputs():
    one = np.ones(1)
    fields = dict(filtered_flux=one, area=one, threshold=one, clean_excess=one, abcor=one)
    assert clean_sources(one, one, one, one, 0 * one, **fields).tolist() == [True]
    with pytest.raises(ValueError, match="clean_param"):
        clean_sources(one, one, one, one, 0 * one, clean_param=0.0, **fields)
