"""Window planning and gathering: coverage of every source, the pixel cap, edges and corners."""

import itertools

import numpy as np
import pytest

from csst_photoz.photometry.windows import (
    DEFAULT_MAX_WINDOW_PIXELS,
    DEFAULT_MERGE_PIXELS,
    gather_windows,
    plan_windows,
    window_offsets,
    window_size_for,
)


def awkward_centres(rng, n):
    """Sub-pixel, integer, half-integer (pixel-edge) and negative coordinates."""
    base = rng.uniform(-30.0, 30.0, n)
    kind = rng.integers(0, 4, n)
    return np.select(
        [kind == 0, kind == 1, kind == 2],
        [np.round(base), np.floor(base) + 0.5, np.floor(base) - 0.5],
        base,
    )


def test_window_reaches_the_half_extent_on_every_side():
    rng = np.random.default_rng(0)
    extents = np.concatenate(
        [
            [0.0, 0.5, 1.0, 2.0, 2.5, 3.0, 4.0, 4.0001, 7.0, 13.0, 1790.0, 1791.0, 5000.0],
            rng.uniform(0.0, 30.0, 150),
            np.round(rng.uniform(0.0, 200.0, 50)),  # integer extents: the tightest case
            rng.uniform(30.0, 2000.0, 30),
        ]
    )
    for half_extent in extents:
        size = window_size_for(half_extent)
        needed = 2 * np.ceil(half_extent) + 2
        assert size % 2 == 0
        assert size <= max(6, 1.25 * needed)  # windows hold not many more pixels than needed
        x = awkward_centres(rng, 20)
        y = awkward_centres(rng, 20)
        x0, y0, dx, dy = window_offsets(x, y, size)
        assert dx.shape == (20, 1, size)
        assert dy.shape == (20, size, 1)
        for start, offsets, centre in ((x0, dx[:, 0, :], x), (y0, dy[:, :, 0], y)):
            assert start.dtype == np.int64
            # offsets are the window's pixel centres minus the source centre
            pixels = start[:, None] + np.arange(size)
            np.testing.assert_array_equal(offsets, pixels - centre[:, None])
            # the window's outer pixel edges lie at or beyond the half extent on both sides
            assert np.all(offsets[:, 0] - 0.5 <= -half_extent)
            assert np.all(offsets[:, -1] + 0.5 >= half_extent)
            # the pixel holding the centre (pixel p spans p - 0.5 <= x < p + 0.5) is central
            central = offsets[:, size // 2]
            assert np.all((central > -0.5) & (central <= 0.5))


def test_window_offsets_at_exact_half_pixel_boundaries():
    x = np.array([2.5, -2.5, -0.5, 0.5, 0.0, -1e-12])
    y = -x
    x0, y0, dx, dy = window_offsets(x, y, 6)
    np.testing.assert_array_equal(x0, np.array([3, -2, 0, 1, 0, 0]) - 3)
    np.testing.assert_array_equal(y0, np.array([-2, 3, 1, 0, 0, 0]) - 3)
    np.testing.assert_array_equal(dx[:, 0, 3], np.array([0.5, 0.5, 0.5, 0.5, 0.0, 1e-12]))
    np.testing.assert_array_equal(dy[:, 3, 0], np.array([0.5, 0.5, 0.5, 0.5, 0.0, -1e-12]))


def check_plan(extents, cap, merge_pixels=0):
    batches = list(plan_windows(extents, max_window_pixels=cap, merge_pixels=merge_pixels))
    rows = np.concatenate([batch.rows for batch in batches])
    np.testing.assert_array_equal(np.sort(rows), np.arange(extents.size))  # each exactly once
    sizes = [batch.size for batch in batches]
    assert sizes == sorted(sizes)
    for batch in batches:
        assert batch.rows.dtype == np.int64
        assert batch.rows.size >= 1
        for row in batch.rows:
            own = window_size_for(float(extents[row]))
            assert batch.size == own if merge_pixels == 0 else batch.size >= own
        assert batch.rows.size * batch.size**2 <= cap or batch.rows.size == 1
    return batches


def test_plan_covers_every_source_once_within_the_pixel_cap():
    rng = np.random.default_rng(1)
    extents = np.concatenate(
        [
            np.exp(rng.uniform(np.log(0.1), np.log(60.0), 400)),
            [0.0, 0.0, 3.0, 3.0, 3.0],  # zeros and repeats
            [700.0],  # alone larger than the small caps below
        ]
    )
    rng.shuffle(extents)
    for cap in (1, 500, 5_000, 100_000, DEFAULT_MAX_WINDOW_PIXELS):
        for merge_pixels in (0, DEFAULT_MERGE_PIXELS):
            batches = check_plan(extents, cap, merge_pixels)
            if cap == 1:
                assert all(batch.rows.size == 1 for batch in batches)
    distinct_sizes = {window_size_for(value) for value in extents}
    unmerged = list(plan_windows(extents, merge_pixels=0))
    assert len(unmerged) == len(distinct_sizes)  # no needless split under the default cap
    # a huge source gets its own batch above the cap instead of being dropped
    (huge,) = [batch for batch in check_plan(extents, 5_000) if batch.size >= 1400]
    assert huge.rows.size == 1
    assert huge.size**2 > 5_000


def test_plan_of_no_sources_is_empty():
    assert list(plan_windows(np.zeros(0))) == []


@pytest.mark.parametrize(
    "half_extent",
    [
        np.array([[1.0, 2.0]]),
        np.array([1.0, np.nan]),
        np.array([1.0, np.inf]),
        np.array([1.0, -0.1]),
        np.float64(3.0),
    ],
)
def test_plan_rejects_bad_half_extents(half_extent):
    with pytest.raises(ValueError, match="half_extent"):
        list(plan_windows(half_extent))


def test_interior_windows_equal_explicit_slices():
    rng = np.random.default_rng(2)
    planes = rng.normal(size=(3, 50, 70))
    size = 12
    x0 = rng.integers(0, 70 - size + 1, 30)
    y0 = rng.integers(0, 50 - size + 1, 30)
    windows, inside = gather_windows(planes, x0, y0, size)
    assert windows.shape == (3, 30, size, size)
    assert inside.shape == (30, size, size)
    assert inside.dtype == bool
    assert inside.all()
    for i in range(30):
        np.testing.assert_array_equal(
            windows[:, i], planes[:, y0[i] : y0[i] + size, x0[i] : x0[i] + size]
        )
    # a 2-D input gives (n, W, W), same values and the input's dtype
    flat, flat_inside = gather_windows(planes[1].astype(np.float32), x0, y0, size)
    assert flat.shape == (30, size, size)
    assert flat.dtype == np.float32
    np.testing.assert_array_equal(flat, windows[1].astype(np.float32))
    np.testing.assert_array_equal(flat_inside, inside)


@pytest.mark.parametrize("dtype", [np.float64, np.int32, bool])
def test_edge_corner_and_outside_windows(dtype):
    rng = np.random.default_rng(3)
    ny, nx, size = 23, 31, 10
    planes = (rng.normal(size=(2, ny, nx)) * 10).astype(dtype)
    # origins across the edges, in the corners and wholly outside on every side
    x0 = np.array([-3, nx - 4, -size + 1, nx - 1, -40, nx + 5, 5, 5, -9, nx - 1, -size, nx])
    y0 = np.array([5, 5, -size + 1, ny - 1, 3, 3, -30, ny + 2, -9, -size, ny - 1, ny])
    windows, inside = gather_windows(planes, x0, y0, size)
    assert windows.dtype == planes.dtype
    for i in range(x0.size):
        rows = y0[i] + np.arange(size)
        cols = x0[i] + np.arange(size)
        expected = ((rows >= 0) & (rows < ny))[:, None] & ((cols >= 0) & (cols < nx))[None, :]
        np.testing.assert_array_equal(inside[i], expected)
        # pixels in the image are the image's; the others hold the nearest edge pixel
        nearest = planes[:, np.clip(rows, 0, ny - 1)][:, :, np.clip(cols, 0, nx - 1)]
        np.testing.assert_array_equal(windows[:, i], nearest)
        for r, c in zip(*np.nonzero(expected), strict=True):
            np.testing.assert_array_equal(windows[:, i, r, c], planes[:, rows[r], cols[c]])
    assert not inside[4:8].any()  # wholly outside
    assert not inside[-1].any()


@pytest.mark.gpu
def test_cupy_windows_match_numpy():
    cupy = pytest.importorskip("cupy")
    rng = np.random.default_rng(4)
    planes = rng.normal(size=(2, 40, 60)).astype(np.float32)
    x = rng.uniform(-5.0, 65.0, 50)
    y = rng.uniform(-5.0, 45.0, 50)
    size = window_size_for(6.3)
    expected = window_offsets(x, y, size)
    result = window_offsets(cupy.asarray(x), cupy.asarray(y), size)
    for got, want in zip(result, expected, strict=True):
        assert isinstance(got, cupy.ndarray)
        np.testing.assert_array_equal(got.get(), want)
    windows, inside = gather_windows(cupy.asarray(planes), result[0], result[1], size)
    want_windows, want_inside = gather_windows(planes, expected[0], expected[1], size)
    np.testing.assert_array_equal(windows.get(), want_windows)
    np.testing.assert_array_equal(inside.get(), want_inside)
    batches = list(plan_windows(cupy.asarray(rng.uniform(0, 20, 100)), max_window_pixels=4000))
    assert sorted(np.concatenate([batch.rows for batch in batches])) == list(range(100))


def test_planned_sizes_equal_window_size_for_without_merging():
    rng = np.random.default_rng(11)
    extent = np.concatenate([rng.uniform(0, 40, 500), rng.uniform(0, 3000, 50), [0.0, 2.0, 3.5]])
    plan = plan_windows(extent, merge_pixels=0)
    planned = {int(row): batch.size for batch in plan for row in batch.rows}
    assert [planned[row] for row in range(extent.size)] == [window_size_for(e) for e in extent]


@pytest.mark.parametrize("merge_pixels", [100, 2_000, DEFAULT_MERGE_PIXELS, 10**9])
def test_merging_widens_groups_within_the_pixel_budget(merge_pixels):
    """Going up the sizes, a group is widened to the next size only if that costs at most
    ``merge_pixels`` pixels: the pixels wasted in all stay below (merges x budget), and no two
    neighbouring groups could have been merged within the budget."""
    rng = np.random.default_rng(12)
    extent = np.exp(rng.uniform(np.log(0.5), np.log(80.0), 300))
    own = np.array([window_size_for(e) for e in extent])
    batches = check_plan(extent, DEFAULT_MAX_WINDOW_PIXELS, merge_pixels)
    groups = {}  # widened size -> its sources (a group may span batches under the cap)
    for batch in batches:
        groups.setdefault(batch.size, []).extend(batch.rows)
    sizes = sorted(groups)
    wasted = sum(int((size**2 - own[groups[size]] ** 2).sum()) for size in sizes)
    merges = np.unique(own).size - len(sizes)
    assert wasted <= merges * merge_pixels
    for low, high in itertools.pairwise(sizes):
        widest_below = own[groups[high]].min()  # the smallest size that went into `high`
        assert len(groups[low]) * (widest_below**2 - low**2) > merge_pixels
    if merge_pixels == 10**9:
        assert len(sizes) == 1
    if merge_pixels == 100:
        assert len(sizes) > 5  # a small budget leaves most sizes apart
