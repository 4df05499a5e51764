"""The measurement stage: a band stack in, per-source shapes, fluxes and flags out.

One function, :func:`measure_sources`, chains the kernels in the paper's order:

0. usable pixels, one rule for every stage (:func:`.pixels.usable_pixels`: finite image and
   variance, variance > 0, none of ``bad_mask_bits``); unusable pixels are set to 0;
1. background: mesh estimate per band (:mod:`.background`), subtracted;
2. detection (:mod:`.detection`: segmentation, isophotal centroids and shapes) on the image of
   the ``detection_bands`` usable at each pixel (:func:`.pixels.detection_image`; the paper's
   g + r + i + z sum where all are usable): a band missing over part or all of the tile lowers
   the depth there and removes no source; a tile with no usable detection pixel is an error.
   The threshold is ``threshold_sigma`` on the matched-filter S/N, or SExtractor's
   ``detect_thresh`` converted (:func:`.detection.sextractor_threshold`);
3. Kron radius on the detection image (:func:`.apertures.kron_radius`);
4. in every band, the elliptical aperture of ``kron_factor`` Kron radii (at least
   ``min_radius_pix`` in circular-equivalent radius) and the fixed circular apertures, with
   exact pixel overlaps (:func:`.apertures.sum_ellipses`); the Kron aperture on the detection
   image gives the detection SNR;
5. sources with a detection SNR below ``min_detection_snr`` (default 5) are dropped and their
   segments cleared: at the paper's 1.5-sigma threshold raw detections are dominated by noise
   peaks (a simulated 2048^2 tile of 1,827 galaxies: 22,760 raw; 2,029 after sep's CLEAN at 37%
   purity; 714 after the S/N >= 5 cut at 94.5% purity and as complete as sep to i = 26;
   ``benchmarks/photometry_validation.py``). Set it to 0 to keep every detection. Two options
   act on the noise peaks beside bright galaxies that the cut would keep because their Kron
   apertures take in the neighbour's light: ``snr_mask_neighbours`` (on by default) computes
   the cut's S/N without other detections' pixels, ``clean`` (off) runs SExtractor's CLEAN
   (vectorised, :mod:`.clean`) on the kept sources. Measured on simulated tiles with truth
   (``benchmarks/results/photometry_real_skies_{1024,2048}.md``, six defect scenarios each):
   the masked S/N takes the false detections next to bright galaxies on the clean 2048^2 tile
   from 6 to 1 and purity from 0.945 to 0.963 (0.957 to 0.967 at 1024^2), for 3 of 675 matched
   galaxies (completeness at i < 26 0.849 to 0.848); CLEAN alone removes 2 of the 6, and
   nothing more once the S/N is masked (the same rows in all twelve runs).
   Flags that depend on other sources (``NEIGHBOURS``) are computed against the kept sources.

It is array-library agnostic: give it CuPy arrays and everything runs, and stays, on the GPU
(the few per-source arrays needed to plan windows are the only transfers). Stamps are cut
separately (:func:`.stamps.cut_stamps`), in batches sized for the consumer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..tile import MaskBit
from .apertures import kron_radius, sum_ellipses
from .backend import array_module, is_cupy
from .background import estimate_background
from .clean import clean_sources
from .detection import detect_sources, sextractor_threshold
from .flags import SourceFlag
from .pixels import band_noise, detection_image, usable_pixels

__all__ = [
    "ADDED_SINCE_0_1",
    "MEASURE_STAGES",
    "PhotometryConfig",
    "SourceMeasurements",
    "StageTimer",
    "measure_sources",
    "untimed",
]

#: The stages `measure_sources` reports to its ``stage`` timer, in order.
MEASURE_STAGES = ("pixel_masks", "background", "detection", "kron_and_snr", "apertures")

#: A stage timer: ``with stage("detection"): ...`` (e.g. the batch processor's stage clock).
StageTimer = Callable[[str], AbstractContextManager[Any]]


def untimed(name: str) -> AbstractContextManager[Any]:
    """The default stage timer: times nothing."""
    return nullcontext()


#: Mask bits whose pixels get zero weight (saturated pixels are kept and flagged).
DEFAULT_BAD_BITS = int(
    MaskBit.BAD | MaskBit.COSMIC_RAY | MaskBit.HOT_PIXEL | MaskBit.NONFINITE | MaskBit.NO_DATA
)


#: Settings added after 0.1.0 (issues 18, 20) with the value that keeps 0.1.0's recipe. A
#: record of settings that leaves them out while they hold these values
#: (`PhotometryConfig.recorded`) still equals a 0.1.0 run's, so that run resumes; read a record
#: back with `PhotometryConfig.from_recorded`. Not all are today's defaults:
#: ``snr_mask_neighbours`` is on by default, so a default run records it, and a 0.1.0 run
#: resumes with ``snr_mask_neighbours = false``.
ADDED_SINCE_0_1: dict[str, Any] = {
    "detection_weights": "equal",
    "detect_thresh": None,
    "clean": False,
    "clean_param": 1.0,
    "snr_mask_neighbours": False,
    "max_window_pixels_gpu": 1 << 26,
}


class PhotometryConfig(BaseModel):
    """Settings of the measurement stage; the defaults are the paper's recipe."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    detection_bands: tuple[str, ...] = ("g", "r", "i", "z")
    detection_weights: Literal["equal", "inverse_variance"] = Field(
        "equal",
        description="weights of the detection bands: 'equal' (the paper's sum) or "
        "'inverse_variance' (1 / the band's median variance)",
    )
    subtract_background: bool = True
    background_box: int = Field(64, ge=4)
    background_filter: int = Field(3, ge=1)
    threshold_sigma: float = Field(
        1.5,
        gt=0,
        description="threshold on the per-pixel matched-filter S/N (sep's default 'matched' "
        "filter); not SExtractor's DETECT_THRESH, see detect_thresh",
    )
    detect_thresh: float | None = Field(
        None,
        gt=0,
        description="SExtractor's DETECT_THRESH (filtered image over the unfiltered "
        "background sigma); when set, replaces threshold_sigma",
    )
    min_area: int = Field(5, ge=1)
    deblend_cont: float = Field(0.005, gt=0, le=1)
    deblend_nthresh: int = Field(32, ge=1)
    min_detection_snr: float = Field(
        5.0,
        ge=0,
        description="keep sources whose Kron-aperture S/N on the detection image is >= this",
    )
    clean: bool = Field(
        False,
        description="SExtractor's CLEAN on the sources kept by the S/N cut: drop those a "
        "brighter neighbour's Moffat wings explain (off: with snr_mask_neighbours on it "
        "removed nothing more on the simulated tiles of benchmarks/photometry_real_skies.py)",
    )
    clean_param: float = Field(1.0, gt=0, description="CLEAN's Moffat beta (CLEAN_PARAM)")
    snr_mask_neighbours: bool = Field(
        True,
        description="the detection S/N of the cut gives other detections' segments zero "
        "weight (noise peaks on a bright galaxy's wing lose its light): on a simulated "
        "2048^2 tile 5 of 6 false detections next to bright galaxies go, purity 0.945 -> "
        "0.963, for 3 of 675 matched galaxies (benchmarks/photometry_real_skies.py); "
        "false is the recipe of 0.1.0",
    )
    kron_factor: float = Field(1.0, gt=0, description="aperture size in Kron radii")
    kron_integration_radius: float = Field(6.0, gt=0)
    min_radius_pix: float = Field(1.75, gt=0)
    circular_radii_arcsec: tuple[float, ...] = (0.3, 0.5, 1.0)
    mask_neighbours: bool = False
    bad_mask_bits: int = DEFAULT_BAD_BITS
    stamp_size: int = Field(64, ge=1)
    max_window_pixels: int = Field(
        1 << 22,
        ge=1,
        description="cap of one batch of aperture windows on NumPy [pixels per plane]",
    )
    max_window_pixels_gpu: int = Field(
        1 << 26,
        ge=1,
        description="the same cap on CuPy (fewer kernel launches: "
        "benchmarks/results/launch_budget_max_window_67108864.md); results do not depend on it",
    )

    @field_validator("detection_bands")
    @classmethod
    def _non_empty(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or len(set(value)) != len(value):
            raise ValueError("detection_bands must be non-empty and unique")
        return value

    @model_validator(mode="after")
    def _one_threshold(self) -> PhotometryConfig:
        if self.detect_thresh is not None and "threshold_sigma" in self.model_fields_set:
            raise ValueError(
                "give threshold_sigma (matched-filter S/N) or detect_thresh (SExtractor's "
                "DETECT_THRESH), not both"
            )
        return self

    @classmethod
    def from_recorded(cls, data: Mapping[str, Any]) -> PhotometryConfig:
        """The settings of a record (`recorded`): keys it leaves out hold 0.1.0's values.

        Not the defaults: ``snr_mask_neighbours`` left out of a record means false (a 0.1.0
        run, or one that turned it off), while ``PhotometryConfig()`` has it on.
        """
        return cls.model_validate({**ADDED_SINCE_0_1, **data})

    def recorded(self) -> dict[str, Any]:
        """The settings as JSON values, leaving out `ADDED_SINCE_0_1` keys at 0.1.0's values.

        For records compared across versions (a run's ``run.json``): settings with 0.1.0's
        recipe give a 0.1.0 run's record. `from_recorded` reads it back to the same settings.
        """
        data = self.model_dump(mode="json")
        for key, default in ADDED_SINCE_0_1.items():
            if data[key] == default:
                del data[key]
        return data

    def window_pixels(self, on_gpu: bool) -> int:
        """The cap of one batch of aperture windows: `max_window_pixels_gpu` on CuPy arrays."""
        return self.max_window_pixels_gpu if on_gpu else self.max_window_pixels

    def detection_threshold(self) -> float:
        """The threshold on the matched-filter S/N map that detection applies.

        ``threshold_sigma``, or, when ``detect_thresh`` is set, its equivalent for the 3 x 3
        detection filter (:func:`.detection.sextractor_threshold`: DETECT_THRESH 1.5 is 4.0).
        """
        if self.detect_thresh is None:
            return self.threshold_sigma
        return sextractor_threshold(self.detect_thresh)

    @field_validator("circular_radii_arcsec")
    @classmethod
    def _positive(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(not r > 0 for r in value):
            raise ValueError("circular aperture radii must be > 0")
        return value


@dataclass(frozen=True)
class SourceMeasurements:
    """Per-source results of :func:`measure_sources`, on the device of the input.

    Attributes
    ----------
    x, y, a, b, theta
        (n,) isophotal centroid [pixels, 0-based], second-moment semi-axes [pixels], angle
        [rad, from +x towards +y].
    kron_radius
        (n,) Kron radius in units of (a, b) (0 where undefined).
    aperture_scale
        (n,) the Kron aperture's semi-axes are ``aperture_scale x (a, b)``.
    area
        (n,) isophotal area [pixels].
    detection_snr
        (n,) Kron-aperture flux over its error on the detection image.
    flux, flux_err
        (n_bands, n) Kron-aperture flux and error [e-].
    circular_flux, circular_flux_err
        (n_radii, n_bands, n) circular-aperture fluxes and errors [e-].
    circular_radii_pix
        The circular radii [pixels].
    flags
        (n,) int32 :class:`~.SourceFlag` bits.
    band_flags
        (n_bands, n) int32: per band, :attr:`~.SourceFlag.MASKED` and
        :attr:`~.SourceFlag.BAND_MISSING` of the Kron aperture in that band alone.
    background_rms
        (n_bands,) median background RMS per band [e-].
    segmentation
        (ny, nx) int32 segmentation map (source k = k + 1).
    images
        (n_bands, ny, nx) the background-subtracted images (for stamps).
    valid
        (n_bands, ny, nx) bool usable pixels.
    """

    x: Any
    y: Any
    a: Any
    b: Any
    theta: Any
    kron_radius: Any
    aperture_scale: Any
    area: Any
    detection_snr: Any
    flux: Any
    flux_err: Any
    circular_flux: Any
    circular_flux_err: Any
    circular_radii_pix: tuple[float, ...]
    flags: Any
    band_flags: Any
    background_rms: Any
    segmentation: Any
    images: Any
    valid: Any

    def __len__(self) -> int:
        return int(self.x.shape[0])


def measure_sources(
    images: Any,
    variances: Any,
    *,
    bands: Sequence[str],
    pixel_scale_arcsec: float,
    mask: Any = None,
    config: PhotometryConfig | None = None,
    stage: StageTimer | None = None,
    overwrite_input: bool = False,
) -> SourceMeasurements:
    """Detect sources on the detection stack and measure them in every band.

    Parameters
    ----------
    images
        (n_bands, ny, nx) images [e-] (NumPy or CuPy).
    variances
        Their per-pixel variance [e-^2], same shape.
    bands
        Band names of the first axis.
    pixel_scale_arcsec
        Pixel size [arcsec] (converts the circular radii).
    mask
        Optional uint (n_bands, ny, nx) or (ny, nx) :class:`~csst_photoz.tile.MaskBit` flags.
    config
        Settings (default: :class:`PhotometryConfig`).
    stage
        Optional timer: each of :data:`MEASURE_STAGES` runs inside ``with stage(name):`` (the
        batch processor times them with device synchronisation); nothing else changes.
    overwrite_input
        Work in place in ``images`` and ``variances`` (when they are float32 already): unusable
        pixels are zeroed and the background subtracted there instead of in new stacks, up to
        three band stacks less at the peak (2.4 GB each for a full 9216 x 9232 tile). They then
        hold what `SourceMeasurements.images` holds.

    Returns
    -------
    SourceMeasurements
        Per-source arrays (an empty tile gives zero-length arrays, not an error).

    Raises
    ------
    ValueError
        On mismatched shapes, unknown detection bands or a tile without a pixel usable in any
        detection band (:func:`.tile_photometry.measure_tile` raises it as a
        :class:`~csst_photoz.tile.TileDataError` naming the tile).
    """
    config = config or PhotometryConfig()
    stage = stage or untimed
    xp = array_module(images)
    bands = list(bands)
    _check_inputs(images, variances, bands, pixel_scale_arcsec, config)
    radii_pix = tuple(r / pixel_scale_arcsec for r in config.circular_radii_arcsec)

    with stage("pixel_masks"):
        pixels = _usable_pixels(images, variances, mask, config, overwrite_input, xp)
    with stage("background"):
        if config.subtract_background:
            pixels = _subtract_background(pixels, config, xp)
        background_rms = pixels.noise
    with stage("detection"):
        detection = _detect(pixels, bands, config, xp)
    if len(detection.found) == 0:
        return _no_sources(pixels, detection, background_rms, radii_pix, xp)
    with stage("kron_and_snr"):
        kron = _kron_apertures(detection, config, xp)
        keep, segmentation = _significant(kron.detection_snr, detection.found, config, xp)
    with stage("apertures"):
        return _measure_kept(
            pixels, detection, kron, keep, segmentation, background_rms, radii_pix, config, xp
        )


def _check_inputs(
    images: Any,
    variances: Any,
    bands: list[str],
    pixel_scale_arcsec: float,
    config: PhotometryConfig,
) -> None:
    """Raise a ValueError naming the problem with the stacks, band names or pixel scale."""
    if images.ndim != 3 or tuple(images.shape) != tuple(variances.shape):
        raise ValueError(
            f"images {tuple(images.shape)} and variances {tuple(variances.shape)} must be "
            "(band, y, x) arrays of one shape"
        )
    if images.shape[0] != len(bands) or len(set(bands)) != len(bands):
        raise ValueError(f"{images.shape[0]} image planes but band names {bands}")
    missing = [band for band in config.detection_bands if band not in bands]
    if missing:
        raise ValueError(f"detection band(s) {missing} not among the tile's bands {bands}")
    if not pixel_scale_arcsec > 0:
        raise ValueError(f"pixel_scale_arcsec must be > 0, got {pixel_scale_arcsec}")


@dataclass(frozen=True)
class _Pixels:
    """The float32 band stacks with their usable-pixel masks (step 0's output)."""

    images: Any
    variances: Any
    valid: Any  # (n_bands, ny, nx) bool
    saturated: Any  # (n_bands, ny, nx) bool, or None when no pixel is saturated
    all_valid: bool
    own_images: bool  # may `images` be changed in place?
    noise: Any  # (n_bands,) median noise of the usable pixels (`pixels.band_noise`)


def _usable_pixels(
    images: Any,
    variances: Any,
    mask: Any,
    config: PhotometryConfig,
    overwrite_input: bool,
    xp: Any,
) -> _Pixels:
    """float32 stacks whose unusable pixels (:func:`.pixels.usable_pixels`) are 0."""
    given = (images, variances)
    images = xp.asarray(images, dtype=xp.float32)
    variances = xp.asarray(variances, dtype=xp.float32)
    # may the stacks be changed in place? (asked for, or converted copies made just now; not
    # a view of the caller's stack: asarray of a '<f4' array read from zarr is a new object)
    own_images = _may_write(images, overwrite_input or not xp.may_share_memory(images, given[0]))
    own_variances = _may_write(
        variances, overwrite_input or not xp.may_share_memory(variances, given[1])
    )
    if mask is not None:
        mask = mask[None] if mask.ndim == 2 else mask
    valid = usable_pixels(images, variances, mask, bad_bits=config.bad_mask_bits)
    saturated = None
    if mask is not None:
        saturated = (mask & int(MaskBit.SATURATED)) != 0
        saturated = xp.broadcast_to(saturated, images.shape) if bool(saturated.any()) else None
    all_valid = bool(valid.all())
    noise = band_noise(variances, valid)  # before unusable variances are zeroed
    if not all_valid:  # unusable pixels become 0 with 0 variance (and stay flagged by `valid`)
        invalid = ~valid
        images = _zero_where(images, invalid, own_images, xp)
        variances = _zero_where(variances, invalid, own_variances, xp)
        del invalid
        own_images = True
    return _Pixels(images, variances, valid, saturated, all_valid, own_images, noise)


def _subtract_background(pixels: _Pixels, config: PhotometryConfig, xp: Any) -> _Pixels:
    """The stacks with each band's mesh background subtracted (unusable pixels stay 0).

    Bands are estimated together in groups of at most ``_BACKGROUND_GROUP_PIXELS`` pixels (one
    call for all seven bands of a small image: the fixed costs per call dominate there; one
    band at a time from 2048^2 up, where larger sorts fall out of the caches, and on a full
    tile, to bound memory). A band without a mesh box of enough usable
    pixels (e.g. entirely masked) keeps its pixels as given: tiles hold background-subtracted
    images, and its fluxes come out NaN or flagged anyway.
    """
    images, valid, all_valid = pixels.images, pixels.valid, pixels.all_valid
    subtracted = images if pixels.own_images else xp.empty_like(images)
    n_bands, ny, nx = images.shape
    # GPU workers: every band in one call (7x fewer kernel launches on a full tile,
    # benchmarks/results/launch_budget.md); the device holds the extra copies of the stack
    per_group = n_bands if is_cupy(images) else max(1, _BACKGROUND_GROUP_PIXELS // (ny * nx))
    for start in range(0, n_bands, per_group):
        group = slice(start, min(start + per_group, n_bands))
        try:
            background = _background(images[group], None if all_valid else valid[group], config)
        except ValueError:  # some band of the group cannot be estimated: band by band
            background = xp.stack(
                [_band_background(images[k], valid[k], all_valid, config, xp)
                 for k in range(group.start, group.stop)]
            )  # fmt: skip
        xp.subtract(images[group], background, out=subtracted[group])
        del background
        if not all_valid:
            subtracted[group] = xp.where(valid[group], subtracted[group], xp.float32(0))
    return replace(pixels, images=subtracted, own_images=True)


#: Bands whose background is estimated in one call: at most this many pixels in all. Measured
#: on one core (seven bands): 256^2 all in one call 5.5 ms against 17 ms band by band; 1024^2
#: best in fours (69 ms, 72 ms all, 78 ms one by one); 2048^2 one by one 270 ms against 419 ms
#: in fours (larger sorts fall out of the caches), so at most 4 Mpix.
_BACKGROUND_GROUP_PIXELS = 1 << 22


def _background(images: Any, valid: Any, config: PhotometryConfig) -> Any:
    """Mesh background of a band stack (``valid``: usable pixels, or None for all)."""
    background, _ = estimate_background(
        images,
        mask=None if valid is None else ~valid,
        box_size=config.background_box,
        filter_size=config.background_filter,
        with_rms=False,
    )
    return background


def _band_background(
    image: Any, valid: Any, all_valid: bool, config: PhotometryConfig, xp: Any
) -> Any:
    """One band's mesh background, or 0 where it cannot be estimated (too few usable pixels)."""
    try:
        return _background(image[None], None if all_valid else valid[None], config)[0]
    except ValueError:
        return xp.zeros_like(image)


@dataclass(frozen=True)
class _Detection:
    """The detection image (detection bands usable at each pixel) and the sources found on it."""

    image: Any
    variance: Any
    valid: Any  # (ny, nx) bool: usable in at least one detection band
    found: Any  # detection.Detections


def _detect(pixels: _Pixels, bands: list[str], config: PhotometryConfig, xp: Any) -> _Detection:
    """Segment the detection image of the bands usable at each pixel (`.pixels`)."""
    index = [bands.index(band) for band in config.detection_bands]
    weights = None
    if config.detection_weights == "inverse_variance":
        noise = [float(pixels.noise[k]) for k in index]
        usable = [1.0 / (n * n) for n in noise if n > 0]  # NaN (no noise model) fails `n > 0`
        weights = [1.0 / (n * n) / max(usable, default=1.0) if n > 0 else 1.0 for n in noise]
    image, variance, valid = detection_image(
        pixels.images, pixels.variances, pixels.valid, index, weights=weights
    )
    if not bool(valid.any()):
        raise ValueError(
            f"no usable pixel in any detection band {list(config.detection_bands)}: every pixel "
            "is masked, non-finite or has zero variance"
        )
    found = detect_sources(
        image,
        variance,
        threshold_sigma=config.detection_threshold(),
        min_area=config.min_area,
        deblend_cont=config.deblend_cont,
        deblend_nthresh=config.deblend_nthresh,
        mask=~valid,
        clean_inputs=config.clean,
    )
    return _Detection(image, variance, valid, found)


def _window_options(segmentation: Any, config: PhotometryConfig) -> dict[str, Any]:
    """The keywords every aperture kernel takes: segmentation, neighbour masking, window cap."""
    return {
        "segmentation": segmentation,
        "mask_neighbours": config.mask_neighbours,
        "max_window_pixels": config.window_pixels(is_cupy(segmentation)),
    }


@dataclass(frozen=True)
class _KronApertures:
    """Per detected source: Kron radius, aperture scale and semi-axes, flags, detection S/N."""

    radius: Any
    scale: Any
    a: Any
    b: Any
    flags: Any
    detection_snr: Any


def _kron_apertures(detection: _Detection, config: PhotometryConfig, xp: Any) -> _KronApertures:
    """Kron apertures on the detection image (at least ``min_radius_pix``) and their S/N there."""
    found = detection.found
    common = _window_options(found.segmentation, config)
    kron, kron_flags = kron_radius(
        detection.image, found.x, found.y, found.a, found.b, found.theta,
        integration_radius=config.kron_integration_radius, valid=detection.valid, **common,
    )  # fmt: skip
    scale = config.kron_factor * kron
    minimum = config.min_radius_pix / xp.sqrt(found.a * found.b)
    enlarged = scale < minimum
    scale = xp.where(enlarged, minimum, scale)
    flags = found.flags | kron_flags | xp.where(enlarged, int(SourceFlag.MIN_APERTURE), 0)

    aperture_a, aperture_b = scale * found.a, scale * found.b
    if config.snr_mask_neighbours:  # the S/N counts the source's light, not its neighbours'
        common = {**common, "mask_neighbours": True}
    on_detection = sum_ellipses(
        detection.image, detection.variance, found.x, found.y, aperture_a, aperture_b,
        found.theta, valid=detection.valid, **common,
    )  # fmt: skip
    flags = flags | on_detection.flags[0]
    with_error = on_detection.flux_err[0, 0] > 0
    detection_snr = on_detection.flux[0, 0] / xp.where(with_error, on_detection.flux_err[0, 0], 1)
    detection_snr = xp.where(with_error, detection_snr, xp.nan)
    return _KronApertures(kron, scale, aperture_a, aperture_b, flags, detection_snr)


def _significant(
    detection_snr: Any, found: Any, config: PhotometryConfig, xp: Any
) -> tuple[Any, Any]:
    """Indices of the kept sources, and the segmentation of them.

    Kept: S/N >= ``min_detection_snr`` and, if ``clean``, not explained by a brighter kept
    neighbour's wings (:func:`.clean.clean_sources`). The segments of the dropped sources are
    cleared and the kept ones renumbered 1...n_kept.
    """
    keep = xp.nonzero(detection_snr >= config.min_detection_snr)[0]
    if config.clean:
        survives = clean_sources(
            *(v[keep] for v in (found.x, found.y, found.a, found.b, found.theta)),
            filtered_flux=found.filtered_flux[keep], area=found.area[keep].astype(xp.float64),
            threshold=found.threshold[keep], clean_excess=found.clean_excess[keep],
            abcor=found.abcor[keep], clean_param=config.clean_param,
        )  # fmt: skip
        keep = keep[survives]
    segmentation = found.segmentation
    relabel = xp.zeros(detection_snr.shape[0] + 1, dtype=xp.int32)
    relabel[keep + 1] = xp.arange(1, keep.shape[0] + 1, dtype=xp.int32)
    return keep, relabel[segmentation]


def _measure_kept(
    pixels: _Pixels,
    detection: _Detection,
    kron: _KronApertures,
    keep: Any,
    segmentation: Any,
    background_rms: Any,
    radii_pix: tuple[float, ...],
    config: PhotometryConfig,
    xp: Any,
) -> SourceMeasurements:
    """Kron and circular aperture fluxes of the kept sources in every band."""
    found = detection.found
    x, y, a, b, theta = (v[keep] for v in (found.x, found.y, found.a, found.b, found.theta))
    n_kept = int(keep.shape[0])
    ones = xp.ones(n_kept, dtype=xp.float64)
    semi_a = xp.stack([kron.a[keep]] + [r * ones for r in radii_pix])
    semi_b = xp.stack([kron.b[keep]] + [r * ones for r in radii_pix])
    angles = xp.stack([theta] + [0.0 * ones for _ in radii_pix])
    sums = sum_ellipses(
        pixels.images, pixels.variances, x, y, semi_a, semi_b, angles,
        valid=pixels.valid, saturated=pixels.saturated, **_window_options(segmentation, config),
    )  # fmt: skip
    # NEIGHBOURS: other kept sources' pixels in the Kron aperture (the band sums see the kept
    # segmentation); the detection-image stage's bit saw every raw detection and is dropped
    flags = (kron.flags[keep] & ~int(SourceFlag.NEIGHBOURS)) | sums.flags[0]
    return SourceMeasurements(
        x=x,
        y=y,
        a=a,
        b=b,
        theta=theta,
        kron_radius=kron.radius[keep],
        aperture_scale=kron.scale[keep],
        area=found.area[keep],
        detection_snr=kron.detection_snr[keep],
        flux=sums.flux[0],
        flux_err=sums.flux_err[0],
        circular_flux=sums.flux[1:],
        circular_flux_err=sums.flux_err[1:],
        circular_radii_pix=radii_pix,
        flags=flags.astype(xp.int32),
        band_flags=sums.band_flags[0],
        background_rms=background_rms,
        segmentation=segmentation,
        images=pixels.images,
        valid=pixels.valid,
    )


def _no_sources(
    pixels: _Pixels,
    detection: _Detection,
    background_rms: Any,
    radii_pix: tuple[float, ...],
    xp: Any,
) -> SourceMeasurements:
    """The zero-length measurements of a tile where nothing was detected."""
    n_bands, n_radii = pixels.images.shape[0], len(radii_pix)
    empty = xp.zeros(0, dtype=xp.float64)
    return SourceMeasurements(
        x=empty, y=empty, a=empty, b=empty, theta=empty, kron_radius=empty,
        aperture_scale=empty, area=xp.zeros(0, dtype=xp.int64), detection_snr=empty,
        flux=xp.zeros((n_bands, 0)), flux_err=xp.zeros((n_bands, 0)),
        circular_flux=xp.zeros((n_radii, n_bands, 0)),
        circular_flux_err=xp.zeros((n_radii, n_bands, 0)),
        circular_radii_pix=radii_pix, flags=xp.zeros(0, dtype=xp.int32),
        band_flags=xp.zeros((n_bands, 0), dtype=xp.int32),
        background_rms=background_rms, segmentation=detection.found.segmentation,
        images=pixels.images, valid=pixels.valid,
    )  # fmt: skip


def _may_write(array: Any, wanted: bool) -> bool:
    """``wanted``, unless ``array`` is read-only (a memory-mapped file, a frozen buffer)."""
    flags = getattr(array, "flags", None)
    return wanted and bool(getattr(flags, "writeable", True))


def _zero_where(stack: Any, where: Any, in_place: bool, xp: Any) -> Any:
    """``stack`` with 0 where ``where`` is true: changed in place if allowed, else a copy."""
    if not in_place:
        return xp.where(where, xp.float32(0), stack)
    xp.copyto(stack, xp.float32(0), where=where)
    return stack
