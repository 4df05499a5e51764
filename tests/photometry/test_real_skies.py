"""Issue 18: defects that differ from band to band lose no galaxy and split none.

Each test reproduces one numbered failure of the issue on a generated tile (the four Gaussian
galaxies of :mod:`.scenes`): a detection band fully masked (1), a defect in one band (2), zero
variance (5), a tile with no usable pixel (1), stamps of a masked band (6). Every galaxy that
is detectable in the remaining bands keeps exactly one row, with per-band flags.
"""

import numpy as np
import pytest

from csst_photoz.photometry import SourceFlag
from csst_photoz.photometry.measure import PhotometryConfig
from csst_photoz.photometry.tile_photometry import measure_tile
from csst_photoz.tile import MaskBit, TileDataError

from .scenes import BANDS, SOURCES, replace, scene_tile

CONFIG = PhotometryConfig(min_detection_snr=20.0, subtract_background=False)
MASKED, MISSING = int(SourceFlag.MASKED), int(SourceFlag.BAND_MISSING)


def rows_at(table, sources=SOURCES, max_distance=1.5):
    """Row of each source (asserting one row within ``max_distance`` px, and no other row)."""
    x, y = table["x"].to_numpy(), table["y"].to_numpy()
    rows = []
    for sx, sy, *_ in sources:
        near = np.flatnonzero(np.hypot(x - sx, y - sy) < max_distance)
        assert near.size == 1, f"{near.size} rows at ({sx}, {sy})"
        rows.append(int(near[0]))
    assert table.num_rows == len(sources), f"{table.num_rows} rows for {len(sources)} galaxies"
    return rows


def with_mask(tile, band, region, bit=MaskBit.BAD):
    mask = tile.mask.copy()
    mask[(BANDS.index(band), *region)] |= np.uint16(bit)
    return replace(tile, mask=mask)


def box(x, y, half):
    return slice(round(y) - half, round(y) + half + 1), slice(round(x) - half, round(x) + half + 1)


@pytest.mark.parametrize("band", ["g", "r", "i", "z"])
def test_a_fully_masked_detection_band_keeps_every_galaxy(band):
    tile = scene_tile(seed=21)
    table = measure_tile(with_mask(tile, band, (slice(None),)), config=CONFIG).table
    rows = rows_at(table)
    assert np.isnan(table[f"flux_{band}"].to_numpy()[rows]).all()
    assert (table[f"flags_{band}"].to_numpy()[rows] & MISSING).all()
    assert (table["flags"].to_numpy()[rows] & MISSING).all()
    others = [b for b in BANDS if b != band]
    for other in others:
        assert np.isfinite(table[f"flux_{other}"].to_numpy()[rows]).all()
        assert not (table[f"flags_{other}"].to_numpy()[rows] & (MISSING | MASKED)).any()


def test_a_partly_masked_band_flags_the_galaxies_it_covers():
    tile = scene_tile(seed=22)
    half = (slice(None), slice(0, 85))  # x < 85: sources 0 and 2
    table = measure_tile(with_mask(tile, "r", half, MaskBit.NO_DATA), config=CONFIG).table
    rows = rows_at(table)
    flags_r = table["flags_r"].to_numpy()[rows]
    covered = np.array([x < 75 for x, *_ in SOURCES])
    assert (flags_r[covered] & MISSING).all()
    assert not (flags_r[~covered] & (MISSING | MASKED)).any()


def test_a_cosmic_ray_patch_in_one_band_removes_no_galaxy():
    tile = scene_tile(seed=23)
    x, y = SOURCES[1][:2]
    region = box(x, y, 10)  # 21 x 21 pixels over the galaxy's centre
    image = tile.image.copy()
    image[(BANDS.index("z"), *region)] += 5e4
    hit = with_mask(replace(tile, image=image), "z", region, MaskBit.COSMIC_RAY)
    table = measure_tile(hit, config=CONFIG).table
    clean = measure_tile(tile, config=CONFIG).table
    rows, clean_rows = rows_at(table), rows_at(clean)
    row = rows[1]
    assert table["flags_z"][row].as_py() & (MASKED | MISSING)
    for band in ("g", "r", "i"):
        assert not table[f"flags_{band}"][row].as_py() & MASKED
        got, expected = table[f"counts_{band}"][row].as_py(), clean[f"counts_{band}"][clean_rows[1]]
        assert got == pytest.approx(expected.as_py(), rel=0.02)


def test_a_nan_block_in_one_band_does_not_split_a_galaxy():
    tile = scene_tile(seed=24)
    x, y = SOURCES[2][:2]
    image = tile.image.copy()
    image[(BANDS.index("i"), *box(x, y, 3))] = np.nan  # 7 x 7 at the centre
    table = measure_tile(replace(tile, image=image), config=CONFIG).table
    clean = measure_tile(tile, config=CONFIG).table
    row, clean_row = rows_at(table)[2], rows_at(clean)[2]
    assert table["flags_i"][row].as_py() & MASKED
    assert not table["flags_g"][row].as_py() & MASKED
    for name in ("x", "y"):
        assert table[name][row].as_py() == pytest.approx(clean[name][clean_row].as_py(), abs=0.1)
    assert table["counts_g"][row].as_py() == pytest.approx(
        clean["counts_g"][clean_row].as_py(), rel=0.02
    )


@pytest.mark.parametrize("bands", [("g",), ("g", "r", "i", "z")])
def test_zero_variance_pixels_are_unusable_as_masked_pixels_are(bands):
    """Zero variance means no data: the catalogue is the one of the region masked BAD."""
    tile = scene_tile(seed=25)
    x, y = SOURCES[2][:2]
    variance, mask = tile.variance.copy(), tile.mask.copy()
    region = (slice(round(y) - 15, round(y) + 15), slice(round(x) + 1, round(x) + 15))
    for band in bands:
        variance[(BANDS.index(band), *region)] = 0.0
        mask[(BANDS.index(band), *region)] = MaskBit.BAD
    table = measure_tile(replace(tile, variance=variance), config=CONFIG).table
    masked = measure_tile(replace(tile, mask=mask), config=CONFIG).table
    assert table.equals(masked)
    clean = measure_tile(tile, config=CONFIG).table
    row, clean_row = rows_at(table)[2], rows_at(clean)[2]
    if len(bands) == 1:  # detection still sees the region in r, i, z: the same centroid
        assert table["flags_g"][row].as_py() & MASKED
        assert not table["flags_r"][row].as_py() & MASKED
        for name in ("x", "y"):
            assert table[name][row].as_py() == pytest.approx(
                clean[name][clean_row].as_py(), abs=0.1
            )
        # the error loses the masked pixels' variance (no pixel counted as noiseless)
        assert table["counts_err_g"][row].as_py() < clean["counts_err_g"][clean_row].as_py()
    else:  # no detection band there: the footprint stops at the region
        assert table["flags"][row].as_py() & SourceFlag.FOOTPRINT_TRUNCATED


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda t: replace(t, mask=t.mask | np.uint16(MaskBit.NO_DATA)), id="masked"),
        pytest.param(lambda t: replace(t, image=np.full_like(t.image, np.nan)), id="nan"),
        pytest.param(lambda t: replace(t, variance=np.zeros_like(t.variance)), id="zero-variance"),
    ],
)
def test_a_tile_without_a_usable_detection_pixel_is_an_error_naming_it(spoil):
    with pytest.raises(TileDataError, match="tile 7: no usable pixel in any detection band"):
        measure_tile(spoil(scene_tile(seed=26)), config=CONFIG)


def test_the_detection_bands_alone_decide_whether_a_tile_is_usable():
    tile = scene_tile(seed=27)
    mask = tile.mask.copy()
    for band in ("g", "r", "i", "z"):
        mask[BANDS.index(band)] = MaskBit.NO_DATA
    mask[BANDS.index("i"), :, :100] = 0  # i usable over part of the tile: no error
    table = measure_tile(replace(tile, mask=mask), config=CONFIG).table
    assert table.num_rows >= 2


def test_stamps_of_a_masked_band_are_noise_at_the_band_level_and_flagged():
    tile = scene_tile(seed=28)
    result = measure_tile(with_mask(tile, "u", (slice(None),), MaskBit.NO_DATA), config=CONFIG)
    stamps, flags = result.stamps()
    assert np.isfinite(stamps).all()
    assert (flags & SourceFlag.STAMP_PADDED).all()
    noise = np.sqrt(tile.variance[BANDS.index("u")].mean())
    assert stamps[:, BANDS.index("u")].std() == pytest.approx(noise, rel=0.05)
    # the other bands are the tile's pixels
    clean = measure_tile(tile, config=CONFIG).stamps()[0]
    np.testing.assert_array_equal(stamps[:, BANDS.index("g")], clean[:, BANDS.index("g")])


def test_neighbours_counts_kept_sources_only():
    """Isolated galaxies on a grid: the noise peaks dropped by the S/N cut are no neighbours."""
    grid = tuple(
        (40.0 + 80 * i + 0.3, 40.0 + 80 * j + 0.6, 3e3, 2.5, 2.0, 0.5)
        for i in range(3)
        for j in range(3)
    )
    tile = scene_tile(seed=29, shape=(240, 240), sources=grid)
    config = PhotometryConfig(subtract_background=False)  # the paper's S/N >= 5 cut
    result = measure_tile(tile, config=config)
    rows = [
        int(np.argmin(np.hypot(result.table["x"].to_numpy() - x, result.table["y"].to_numpy() - y)))
        for x, y, *_ in grid
    ]
    flags = result.table["flags"].to_numpy()
    assert not (flags[rows] & SourceFlag.NEIGHBOURS).any()
    # a close pair is still flagged (tests/photometry/test_tile_photometry.py checks more)
    pair = ((60.0, 60.0, 5e4, 3.0, 3.0, 0.0), (68.0, 60.0, 5e4, 3.0, 3.0, 0.0))
    table = measure_tile(scene_tile(seed=30, sources=pair), config=config).table
    assert (table["flags"].to_numpy() & SourceFlag.NEIGHBOURS).all()


def test_a_band_too_masked_for_a_background_keeps_every_galaxy():
    """z usable on a sliver only: no mesh box for its background, no error, no row lost."""
    tile = scene_tile(seed=31)
    mask = tile.mask.copy()
    mask[BANDS.index("z")] = MaskBit.NO_DATA
    mask[BANDS.index("z"), :10, :10] = 0
    config = CONFIG.model_copy(update={"subtract_background": True})
    table = measure_tile(replace(tile, mask=mask), config=config).table
    rows = rows_at(table)
    assert (table["flags_z"].to_numpy()[rows] & MISSING).all()


def test_inverse_variance_weights_favour_the_deep_bands():
    tile = scene_tile(seed=32)
    z = BANDS.index("z")
    image, variance = tile.image.copy(), tile.variance.copy()
    image[z] += np.random.default_rng(32).normal(0.0, 50.0, image[z].shape).astype(np.float32)
    variance[z] += 2500.0
    noisy_z = replace(tile, image=image, variance=variance)
    equal = measure_tile(noisy_z, config=CONFIG).table
    weighted = CONFIG.model_copy(update={"detection_weights": "inverse_variance"})
    table = measure_tile(noisy_z, config=weighted).table
    rows, equal_rows = rows_at(table), rows_at(equal)
    snr = table["detection_snr"].to_numpy()[rows]
    assert (snr > 2 * equal["detection_snr"].to_numpy()[equal_rows]).all()
    # equal depths: the weights are all 1, the catalogue is the plain sum's
    same = measure_tile(tile, config=weighted).table
    assert same.equals(measure_tile(tile, config=CONFIG).table)


def test_snr_without_neighbours_gives_the_neighbours_pixels_no_weight():
    """A blended pair whose Kron apertures overlap: each S/N loses the other's light."""
    pair = ((60.0, 60.0, 5e4, 3.0, 3.0, 0.0), (68.0, 60.0, 5e4, 3.0, 3.0, 0.0))
    tile = scene_tile(seed=33, sources=pair)
    config = PhotometryConfig(subtract_background=False, kron_factor=2.5)
    assert config.snr_mask_neighbours  # the default
    plain = measure_tile(tile, config=config.model_copy(update={"snr_mask_neighbours": False}))
    plain, masked = plain.table, measure_tile(tile, config=config)
    snr = plain["detection_snr"].to_numpy()[rows_at(plain, pair)]
    masked_snr = masked.table["detection_snr"].to_numpy()[rows_at(masked.table, pair)]
    assert (masked_snr < 0.95 * snr).all()
    # only the cut's S/N changes: the band fluxes are the same
    np.testing.assert_array_equal(plain["counts_r"].to_numpy(), masked.table["counts_r"].to_numpy())


def test_clean_keeps_isolated_galaxies():
    tile = scene_tile(seed=34)
    table = measure_tile(tile, config=CONFIG.model_copy(update={"clean": True})).table
    assert table.equals(measure_tile(tile, config=CONFIG).table)


def test_a_v0_1_record_reads_back_as_0_1s_recipe():
    """A v0.1 run's recorded photometry settings are today's defaults with the masked S/N off
    (0.1.0's recipe, which that run resumes with); a record leaves out the keys added since
    0.1.0 only at 0.1.0's values, so a default run records ``snr_mask_neighbours``."""
    import json
    from pathlib import Path

    run = Path(__file__).parents[1] / "fixtures" / "v0_1" / "run" / "run.json"
    recorded = json.loads(run.read_text())["pipeline"]["photometry"]
    v0_1 = PhotometryConfig(snr_mask_neighbours=False)
    assert v0_1.recorded() == recorded
    assert PhotometryConfig.from_recorded(recorded) == v0_1
    assert PhotometryConfig.model_validate(recorded) == PhotometryConfig()  # not a record read
    today = PhotometryConfig().recorded()
    assert today == {**recorded, "snr_mask_neighbours": True}
    assert PhotometryConfig.from_recorded(today) == PhotometryConfig()
    assert PhotometryConfig(clean=True).recorded()["clean"] is True
