"""Rendering: flux conservation, the paper switch, colour gradients, GalSim chromatic drawing."""

from pathlib import Path

import galsim
import numpy as np
import pytest

from csst_photoz.sim import simulate_catalog
from csst_photoz.sim.render import GalaxyMorphology, RenderSettings, add_galaxies

SCALE = 0.075


def _one_galaxy(bulge_hlr=0.15, disk_hlr=0.4, bt=0.4, q=(0.8, 0.5)):
    values = (bulge_hlr, disk_hlr, q[0], q[1], 30.0, bt)
    return GalaxyMorphology(*(np.array([v]) for v in values))


@pytest.fixture(scope="module")
def psfs(instrument):
    return [instrument.psf(band) for band in instrument.band_names]


@pytest.fixture(scope="module")
def small_catalog(instrument):
    table = simulate_catalog(40, seed=11, instrument=instrument)
    bands = instrument.band_names
    bulge = np.column_stack([table[f"flux_bulge_{b}"].to_numpy() for b in bands])
    disk = np.column_stack([table[f"flux_disk_{b}"].to_numpy() for b in bands])
    morphology = GalaxyMorphology.from_table(table)
    return table, bulge, disk, morphology


def test_rendered_flux_equals_synthetic_photometry(small_catalog, psfs):
    """Isolated galaxies, noise off: the image holds the catalogue's electrons to < 1%."""
    table, bulge, disk, morphology = small_catalog
    small = np.flatnonzero(
        np.maximum(table["disk_hlr"].to_numpy(), table["bulge_hlr"].to_numpy()) < 1.0
    )[:12]
    for index in small:
        image = np.zeros((7, 300, 300), dtype=np.float32)
        add_galaxies(
            image,
            x=np.array([149.3]),
            y=np.array([150.2]),
            morphology=GalaxyMorphology(
                *(
                    np.asarray(getattr(morphology, f))[[index]]
                    for f in morphology.__dataclass_fields__
                )
            ),
            flux_bulge=bulge[[index]],
            flux_disk=disk[[index]],
            psfs=psfs,
            pixel_scale_arcsec=SCALE,
        )
        total = bulge[index] + disk[index]
        np.testing.assert_allclose(image.sum(axis=(1, 2)), total, rtol=0.01)


def test_galaxy_centre_is_at_the_requested_pixel(psfs):
    image = np.zeros((7, 101, 121), dtype=np.float32)
    add_galaxies(
        image,
        x=np.array([60.0]),
        y=np.array([40.0]),
        morphology=_one_galaxy(),
        flux_bulge=np.full((1, 7), 1e4),
        flux_disk=np.full((1, 7), 1e4),
        psfs=psfs,
        pixel_scale_arcsec=SCALE,
    )
    ys, xs = np.indices(image.shape[1:])
    weights = image[4]
    assert np.sum(xs * weights) / weights.sum() == pytest.approx(60.0, abs=0.05)
    assert np.sum(ys * weights) / weights.sum() == pytest.approx(40.0, abs=0.05)


def test_stamps_are_clipped_at_the_image_edge(psfs):
    """A round galaxy centred on the corner adds a quarter of its flux; none is wrapped."""
    image = np.zeros((7, 200, 200), dtype=np.float32)
    add_galaxies(
        image,
        x=np.array([-0.5]),
        y=np.array([-0.5]),
        morphology=_one_galaxy(bulge_hlr=0.1, disk_hlr=0.1, bt=0.0, q=(1.0, 1.0)),
        flux_bulge=np.zeros((1, 7)),
        flux_disk=np.full((1, 7), 1000.0),
        psfs=psfs,
        pixel_scale_arcsec=SCALE,
    )
    assert image[4].sum() == pytest.approx(250.0, rel=0.03)
    assert image[4, -20:, :].sum() == 0 and image[4, :, -20:].sum() == 0


def test_paper_setup_has_one_morphology_and_no_psf(psfs):
    """Zhou et al. 2022's setup: every band is the same image up to a flux scale."""
    image = np.zeros((7, 120, 120), dtype=np.float32)
    flux_bulge = np.array([[100.0, 300, 900, 1500, 2000, 2200, 2300]])
    flux_disk = np.array([[900.0, 1200, 1500, 1700, 1800, 1800, 1700]])
    add_galaxies(
        image,
        x=np.array([60.0]),
        y=np.array([60.0]),
        morphology=_one_galaxy(),
        flux_bulge=flux_bulge,
        flux_disk=flux_disk,
        psfs=psfs,
        pixel_scale_arcsec=SCALE,
        settings=RenderSettings(paper_setup=True),
    )
    normalised = image / image.sum(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(normalised, normalised[[4]].repeat(7, axis=0), atol=1e-7)
    # no PSF: the same galaxy drawn through the pixel alone
    reference = galsim.Add(
        [
            galsim.Sersic(4.0, half_light_radius=0.15 * np.sqrt(0.8), trunc=5 * 0.15 * np.sqrt(0.8))
            .shear(q=0.8, beta=30 * galsim.degrees)
            .withFlux(0.4),
            galsim.Exponential(half_light_radius=0.4 * np.sqrt(0.5))
            .shear(q=0.5, beta=30 * galsim.degrees)
            .withFlux(0.6),
        ]
    ).drawImage(galsim.ImageF(120, 120, scale=SCALE), center=galsim.PositionD(61.0, 61.0))
    np.testing.assert_allclose(normalised[4], reference.array, atol=2e-4)


def test_bulge_and_disk_colours_make_a_colour_gradient(psfs):
    """A red bulge in a blue disk: the centre is redder (g - i) than the outskirts."""
    image = np.zeros((7, 160, 160), dtype=np.float32)
    add_galaxies(
        image,
        x=np.array([80.0]),
        y=np.array([80.0]),
        morphology=_one_galaxy(bulge_hlr=0.1, disk_hlr=0.8, bt=0.5),
        flux_bulge=np.array([[10.0, 50, 200, 500, 800, 900, 900]]),
        flux_disk=np.array([[900.0, 900, 900, 800, 700, 600, 500]]),
        psfs=psfs,
        pixel_scale_arcsec=SCALE,
    )
    radius = np.hypot(*(np.indices((160, 160)) - 80.0))
    g, i = image[2], image[4]
    inner = g[radius < 2].sum() / i[radius < 2].sum()
    outer = g[(radius > 10) & (radius < 20)].sum() / i[(radius > 10) & (radius < 20)].sum()
    assert inner < 0.7 * outer


def test_mismatched_inputs_are_rejected(psfs):
    image = np.zeros((7, 50, 50), dtype=np.float32)
    with pytest.raises(ValueError, match="7 bands but got 6 PSFs"):
        add_galaxies(
            image,
            x=np.array([1.0]),
            y=np.array([1.0]),
            morphology=_one_galaxy(),
            flux_bulge=np.ones((1, 7)),
            flux_disk=np.ones((1, 7)),
            psfs=psfs[:6],
            pixel_scale_arcsec=SCALE,
        )
    with pytest.raises(ValueError, match="same galaxies"):
        add_galaxies(
            image,
            x=np.array([1.0, 2.0]),
            y=np.array([1.0, 2.0]),
            morphology=_one_galaxy(),
            flux_bulge=np.ones((2, 7)),
            flux_disk=np.ones((2, 7)),
            psfs=psfs,
            pixel_scale_arcsec=SCALE,
        )


def _cww_sed(name, z):
    path = Path(galsim.meta_data.share_dir) / "SEDs" / f"CWW_{name}_ext.sed"
    wave, flux = np.loadtxt(path, unpack=True)
    table = galsim.LookupTable(wave / 10.0, flux, interpolant="linear")
    return galsim.SED(table, wave_type="nm", flux_type="flambda").atRedshift(z)


@pytest.mark.parametrize(
    ("bulge_sed", "disk_sed", "z", "band"),
    [("E", "Scd", 0.4, "i")]
    + [
        pytest.param(*case, marks=pytest.mark.slow)
        for case in [("E", "Scd", 0.4, "g"), ("E", "Scd", 0.4, "y")]
        + [("Sbc", "Im", 0.9, band) for band in ("g", "i", "y")]
    ],
)
def test_achromatic_bands_match_galsim_chromatic_drawing(instrument, bulge_sed, disk_sed, z, band):
    """Per-band achromatic bulge + disk equals GalSim's chromatic drawing (SEDs through the band,
    a chromatic Airy PSF) to a few per cent of the peak, with the same band fluxes."""
    jitter = galsim.Gaussian(fwhm=instrument.config.psf_jitter_fwhm_arcsec)
    bulge_shape = galsim.Sersic(4.0, half_light_radius=0.12, trunc=0.6).shear(
        q=0.8, beta=0.3 * galsim.radians
    )
    disk_shape = galsim.Exponential(half_light_radius=0.35).shear(q=0.5, beta=0.3 * galsim.radians)
    curve = instrument.bandpass(band)
    bandpass = galsim.Bandpass(
        galsim.LookupTable(curve.wavelength_angstrom / 10.0, curve.throughput, "linear"), "nm"
    )
    pivot_nm = curve.pivot_wavelength / 10.0
    bulge_chromatic = bulge_shape * _cww_sed(bulge_sed, z).withFlux(3000.0, bandpass)
    disk_chromatic = disk_shape * _cww_sed(disk_sed, z).withFlux(5000.0, bandpass)
    psf = galsim.Convolve(galsim.ChromaticAiry(lam=pivot_nm, diam=2.0), jitter)
    chromatic = galsim.Convolve(galsim.Add([bulge_chromatic, disk_chromatic]), psf)
    reference = chromatic.drawImage(bandpass, nx=96, ny=96, scale=SCALE).array

    image = np.zeros((1, 96, 96), dtype=np.float32)
    add_galaxies(
        image,
        x=np.array([47.5]),
        y=np.array([47.5]),
        morphology=GalaxyMorphology(
            *[
                np.array([v])
                for v in (0.12 / np.sqrt(0.8), 0.35 / np.sqrt(0.5), 0.8, 0.5, np.degrees(0.3))
            ],
            np.array([0.375]),
        ),
        flux_bulge=np.array([[3000.0]]),
        flux_disk=np.array([[5000.0]]),
        psfs=[instrument.psf(band)],
        pixel_scale_arcsec=SCALE,
    )
    assert image.sum() == pytest.approx(reference.sum(), rel=0.01)
    assert np.max(np.abs(image[0] - reference)) < 0.03 * reference.max()
