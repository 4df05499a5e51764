"""Small deterministic scenes of Gaussian sources shared by the photometry tests."""

import numpy as np

from csst_photoz.tile import Tile

BANDS = ("NUV", "u", "g", "r", "i", "z", "y")
NOISE = 5.0
#: x, y, flux [e-] (per band, scaled by BAND_SCALE), sigma_major, sigma_minor [px], angle [rad]
SOURCES = (
    (40.3, 30.7, 2e4, 2.0, 2.0, 0.0),
    (100.2, 80.5, 5e4, 3.0, 1.5, 0.6),
    (60.6, 95.1, 1e5, 2.5, 2.0, -1.0),
    (140.4, 30.2, 8e3, 2.2, 1.8, 1.2),
)
BAND_SCALE = np.array([0.3, 0.5, 0.8, 1.0, 1.1, 1.2, 1.0])
WCS_HEADER = {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 150.1, "CRVAL2": 2.2}
WCS_HEADER |= {"CRPIX1": 85.5, "CRPIX2": 64.5, "CD1_1": -2.0833e-5, "CD1_2": 0.0}
WCS_HEADER |= {"CD2_1": 0.0, "CD2_2": 2.0833e-5}


def gaussian(shape, x0, y0, flux, sigma_a, sigma_b, angle):
    ys, xs = np.indices(shape, dtype=float)
    c, s = np.cos(angle), np.sin(angle)
    u = (xs - x0) * c + (ys - y0) * s
    v = -(xs - x0) * s + (ys - y0) * c
    return (
        flux
        * np.exp(-0.5 * (u**2 / sigma_a**2 + v**2 / sigma_b**2))
        / (2 * np.pi * sigma_a * sigma_b)
    )


def scene_tile(seed=0, shape=(128, 170), sources=SOURCES, tile_id=7, noise=NOISE):
    """A seven-band tile of Gaussian sources with white noise (background-free)."""
    rng = np.random.default_rng(seed)
    clean = sum((gaussian(shape, *source) for source in sources), np.zeros(shape))
    image = np.stack([clean * scale + rng.normal(0.0, noise, shape) for scale in BAND_SCALE])
    n = len(BANDS)
    return Tile(
        tile_id=tile_id,
        bands=BANDS,
        image=image.astype(np.float32),
        variance=np.full((n, *shape), noise**2, dtype=np.float32),
        mask=np.zeros((n, *shape), dtype=np.uint16),
        zero_point_rate=tuple(1e10 * (1 + 0.1 * np.arange(n))),
        exposure_time=(600.0, 300, 300, 300, 300, 300, 600),
        pixel_scale_arcsec=0.075,
        wcs_header=WCS_HEADER,
    )


def replace(tile, **changes):
    """A copy of ``tile`` with some fields changed."""
    return Tile(**{**tile.__dict__, **changes})


def central_object(table, x0, y0, *, max_distance):
    """Row of the object nearest (x0, y0) within ``max_distance`` pixels, or -1."""
    if len(table) == 0:
        return -1
    distance = np.hypot(np.asarray(table["x"]) - x0, np.asarray(table["y"]) - y0)
    best = int(np.argmin(distance))
    return best if distance[best] <= max_distance else -1
