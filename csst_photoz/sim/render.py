"""GalSim rendering of bulge + disk galaxies in every band, onto stamps or a shared tile.

Per band a galaxy is ``flux_bulge[b] * bulge + flux_disk[b] * disk`` convolved with band b's
PSF (DESIGN.md, "Simulation notes"): each component is achromatic within a band, but the two
components have their own SEDs, so the galaxy's colour changes from centre to outskirts. The
paper's setup (Zhou et al. 2022: one HST morphology in all bands, no extra PSF) is the
``paper_setup`` switch: then the profile is the reference-band mixture in every band, scaled to
the band's total flux, seen through the detector pixel only.

Bulges are Sersic n = 4 profiles truncated at ``bulge_truncation`` half-light radii (the
catalogue's flux and radius refer to the truncated profile); disks are exponentials.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import galsim
import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

__all__ = [
    "MORPHOLOGY_COLUMNS",
    "GalaxyMorphology",
    "RenderSettings",
    "add_galaxies",
    "component_fluxes",
    "draw_clipped",
    "galaxy_profile",
]


@dataclass(frozen=True)
class RenderSettings:
    """How galaxies are drawn.

    Attributes
    ----------
    paper_setup
        Zhou et al. 2022's setup: one morphology in all bands (no colour gradients), no PSF.
    bulge_truncation
        Truncation radius of the Sersic bulge in units of its half-light radius.
    max_stamp_pixels
        Upper bound on a galaxy's stamp side; larger galaxies are drawn clipped to it.
    gsparams
        GalSim accuracy parameters (defaults: GalSim's).
    """

    paper_setup: bool = False
    bulge_truncation: float = 5.0
    max_stamp_pixels: int = 384
    gsparams: galsim.GSParams | None = None


#: Truth-catalogue columns holding :class:`GalaxyMorphology`'s fields, in field order.
MORPHOLOGY_COLUMNS: tuple[str, ...] = (
    "bulge_hlr",
    "disk_hlr",
    "bulge_q",
    "disk_q",
    "position_angle",
    "bulge_fraction",
)


@dataclass(frozen=True)
class GalaxyMorphology:
    """Shapes of a batch of galaxies (arrays of one length); radii along the major axis."""

    bulge_hlr_arcsec: NDArray[np.float64]
    disk_hlr_arcsec: NDArray[np.float64]
    bulge_q: NDArray[np.float64]
    disk_q: NDArray[np.float64]
    position_angle_deg: NDArray[np.float64]
    bulge_fraction_ref: NDArray[np.float64]

    def __len__(self) -> int:
        return int(np.asarray(self.bulge_hlr_arcsec).size)

    @classmethod
    def from_table(cls, table: pa.Table, rows: NDArray | None = None) -> GalaxyMorphology:
        """The shapes of a truth catalogue's galaxies (all rows, or ``rows``)."""
        columns = [table[name].to_numpy() for name in MORPHOLOGY_COLUMNS]
        return cls(*(c if rows is None else c[rows] for c in columns))

    def select(self, rows: NDArray) -> GalaxyMorphology:
        """The shapes of a subset of the batch."""
        return GalaxyMorphology(*(np.asarray(getattr(self, f.name))[rows] for f in fields(self)))


def component_fluxes(
    table: pa.Table, bands: Sequence[str], rows: NDArray | None = None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Bulge and disk electrons per band of a truth catalogue's galaxies, shape (n, n_bands)."""

    def column(name: str) -> NDArray:
        values = table[name].to_numpy().astype(np.float64)
        return values if rows is None else values[rows]

    bulge = np.column_stack([column(f"flux_bulge_{b}") for b in bands])
    disk = np.column_stack([column(f"flux_disk_{b}") for b in bands])
    return bulge, disk


def _component_shapes(
    morphology: GalaxyMorphology, index: int, settings: RenderSettings
) -> tuple[galsim.GSObject, galsim.GSObject]:
    beta = float(morphology.position_angle_deg[index]) * galsim.degrees
    bulge_q = float(morphology.bulge_q[index])
    disk_q = float(morphology.disk_q[index])
    # the catalogue gives major-axis radii; GalSim's shear keeps the area, so start from the
    # circularised radius sqrt(q) * r_major
    bulge_hlr = float(morphology.bulge_hlr_arcsec[index]) * np.sqrt(bulge_q)
    disk_hlr = float(morphology.disk_hlr_arcsec[index]) * np.sqrt(disk_q)
    bulge = galsim.Sersic(
        n=4.0,
        half_light_radius=bulge_hlr,
        trunc=settings.bulge_truncation * bulge_hlr,
        gsparams=settings.gsparams,
    ).shear(q=bulge_q, beta=beta)
    disk = galsim.Exponential(half_light_radius=disk_hlr, gsparams=settings.gsparams).shear(
        q=disk_q, beta=beta
    )
    return bulge, disk


def galaxy_profile(
    morphology: GalaxyMorphology,
    index: int,
    *,
    flux_bulge: NDArray[np.float64],
    flux_disk: NDArray[np.float64],
    psfs: Sequence[galsim.GSObject],
    settings: RenderSettings = RenderSettings(),
) -> list[galsim.GSObject]:
    """GalSim profiles of one galaxy, one per band, in electrons.

    Parameters
    ----------
    morphology
        Shapes of the batch.
    index
        Which galaxy of the batch.
    flux_bulge, flux_disk
        The galaxy's bulge and disk electrons per band, shape (n_bands,).
    psfs
        One PSF per band (ignored in the paper's setup).
    settings
        Drawing options.

    Returns
    -------
    list of galsim.GSObject
        The galaxy as seen in each band (PSF-convolved unless ``paper_setup``).
    """
    bulge, disk = _component_shapes(morphology, index, settings)
    profiles = []
    if settings.paper_setup:
        bt = float(morphology.bulge_fraction_ref[index])
        mixture = galsim.Add([bulge.withFlux(bt), disk.withFlux(1.0 - bt)])
        for b in range(len(psfs)):
            profiles.append(mixture.withFlux(float(flux_bulge[b] + flux_disk[b])))
        return profiles
    for b, psf in enumerate(psfs):
        galaxy = galsim.Add(
            [bulge.withFlux(float(flux_bulge[b])), disk.withFlux(float(flux_disk[b]))]
        )
        profiles.append(galsim.Convolve(galaxy, psf, gsparams=settings.gsparams))
    return profiles


def add_galaxies(
    image: NDArray[np.float32],
    *,
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    morphology: GalaxyMorphology,
    flux_bulge: NDArray[np.float64],
    flux_disk: NDArray[np.float64],
    psfs: Sequence[galsim.GSObject],
    pixel_scale_arcsec: float,
    settings: RenderSettings = RenderSettings(),
) -> NDArray[np.float32]:
    """Draw galaxies into a (band, y, x) image in place, clipping stamps at the edges.

    Parameters
    ----------
    image
        float32 array (n_bands, ny, nx); galaxies are added to what is there.
    x, y
        Galaxy centres in pixel coordinates of ``image`` (0-based: pixel (0, 0) spans
        -0.5..0.5), shape (n,). Galaxies centred off the image still add their overlap.
    morphology
        Shapes, n galaxies.
    flux_bulge, flux_disk
        Electrons per band, shape (n, n_bands).
    psfs
        One PSF per band.
    pixel_scale_arcsec
        Pixel size.
    settings
        Drawing options.

    Returns
    -------
    numpy.ndarray
        ``image`` itself.
    """
    n_bands = image.shape[0]
    if len(psfs) != n_bands or flux_bulge.shape[1] != n_bands or flux_disk.shape[1] != n_bands:
        raise ValueError(
            f"image has {n_bands} bands but got {len(psfs)} PSFs and fluxes for "
            f"{flux_bulge.shape[1]}/{flux_disk.shape[1]} bands"
        )
    if not (len(x) == len(y) == len(morphology) == flux_bulge.shape[0] == flux_disk.shape[0]):
        raise ValueError("x, y, morphology and fluxes must describe the same galaxies")
    # GalSim bounds are 1-based and inclusive: array pixel (i, j) is GalSim (j + 1, i + 1)
    canvas = [
        galsim.Image(image[b], xmin=1, ymin=1, scale=pixel_scale_arcsec) for b in range(n_bands)
    ]
    for index in range(len(x)):
        profiles = galaxy_profile(
            morphology,
            index,
            flux_bulge=flux_bulge[index],
            flux_disk=flux_disk[index],
            psfs=psfs,
            settings=settings,
        )
        for band, profile in enumerate(profiles):
            draw_clipped(
                canvas[band],
                profile,
                x=float(x[index]),
                y=float(y[index]),
                max_stamp_pixels=settings.max_stamp_pixels,
            )
    return image


def draw_clipped(
    canvas: galsim.Image, profile: galsim.GSObject, *, x: float, y: float, max_stamp_pixels: int
) -> None:
    """Add ``profile`` centred at 0-based (x, y) to a 1-based GalSim ``canvas``, clipped.

    The profile is drawn on its own stamp (GalSim's good size, at most ``max_stamp_pixels``)
    and only the overlap with the canvas is added: ``canvas[bounds] += stamp[bounds]``.
    """
    scale = canvas.scale
    centre = galsim.PositionD(x + 1.0, y + 1.0)
    size = min(profile.getGoodImageSize(scale), max_stamp_pixels)
    stamp = galsim.ImageF(size, size, scale=scale)
    stamp.setCenter(galsim.PositionI(int(np.floor(centre.x + 0.5)), int(np.floor(centre.y + 0.5))))
    overlap = stamp.bounds & canvas.bounds
    if overlap.isDefined():
        profile.drawImage(image=stamp, center=centre)
        canvas[overlap] += stamp[overlap]
