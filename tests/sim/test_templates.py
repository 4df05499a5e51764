"""GalSim's CWW templates on a log grid, and continuous-type interpolation weights."""

import numpy as np
import pytest

from csst_photoz.sim import TEMPLATE_NAMES, load_cww_templates, type_weights


@pytest.fixture(scope="module")
def templates():
    return load_cww_templates()


def test_names_in_type_order(templates):
    assert TEMPLATE_NAMES == ("E", "Sbc", "Scd", "Im")
    assert templates.names == TEMPLATE_NAMES
    assert templates.max_type == 3.0
    assert templates.flux.shape == (4, templates.wavelength_angstrom.size)


@pytest.mark.parametrize(
    ("min_a", "max_a", "step"), [(400.0, 11500.0, 1e-3), (1000.0, 9000.0, 2.5e-3)]
)
def test_grid_is_logarithmic_with_stated_step(min_a, max_a, step):
    ts = load_cww_templates(min_angstrom=min_a, max_angstrom=max_a, log_step=step)
    grid = ts.wavelength_angstrom
    assert ts.log_step == step
    assert grid[0] == pytest.approx(min_a, rel=1e-12)
    assert grid[-1] >= max_a
    assert grid[-2] < max_a
    np.testing.assert_allclose(np.diff(np.log(grid)), step, rtol=1e-8)
    np.testing.assert_allclose(ts.fractional_index(grid[[0, 10, 50]]), [0, 10, 50], atol=1e-9)


def test_unit_flux_at_5500_angstrom(templates):
    for flux in templates.flux:
        assert np.interp(5500.0, templates.wavelength_angstrom, flux) == pytest.approx(
            1.0, abs=1e-3
        )


def test_elliptical_redder_than_irregular(templates):
    def ratio(name):
        flux = templates.flux[TEMPLATE_NAMES.index(name)]
        return np.interp(7000.0, templates.wavelength_angstrom, flux) / np.interp(
            4000.0, templates.wavelength_angstrom, flux
        )

    ratios = [ratio(name) for name in TEMPLATE_NAMES]
    assert ratios[0] > ratios[3]
    assert ratios == sorted(ratios, reverse=True)  # E > Sbc > Scd > Im


def test_arrays_are_read_only(templates):
    """The cached set is shared by every caller: it must not be mutable."""
    with pytest.raises(ValueError):
        templates.flux[0, 0] = 5.0
    with pytest.raises(ValueError):
        templates.wavelength_angstrom[0] = 5.0


def test_grid_beyond_files_is_an_error():
    with pytest.raises(ValueError):
        load_cww_templates(min_angstrom=50.0)
    with pytest.raises(ValueError):
        load_cww_templates(max_angstrom=30000.0)


def test_sed_interpolates_between_neighbours(templates):
    np.testing.assert_allclose(templates.sed(1.5), 0.5 * (templates.flux[1] + templates.flux[2]))
    np.testing.assert_allclose(
        templates.sed(0.25), 0.75 * templates.flux[0] + 0.25 * templates.flux[1]
    )
    np.testing.assert_array_equal(templates.sed(3.0), templates.flux[3])


def test_type_weights_rows_sum_to_one_with_two_neighbours():
    t = np.random.default_rng(3).uniform(0.0, 3.0, size=2000)
    w = type_weights(t, 3.0)
    assert w.shape == (2000, 4)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-14)
    assert np.all((w >= 0) & (w <= 1))
    assert np.all(np.count_nonzero(w, axis=1) <= 2)
    # linear interpolation reproduces the type itself
    np.testing.assert_allclose(w @ np.arange(4.0), t, rtol=1e-12)
    # the non-zero weights sit on floor(t) and floor(t) + 1
    lower = np.floor(t).astype(int)
    rows = np.arange(t.size)
    np.testing.assert_allclose(w[rows, lower] + w[rows, lower + 1], 1.0)


@pytest.mark.parametrize(("t", "expected"), [(0.0, 0), (1.0, 1), (2.0, 2), (3.0, 3)])
def test_integer_type_gives_pure_template(t, expected):
    w = type_weights([t], 3.0)[0]
    np.testing.assert_array_equal(w, np.eye(4)[expected])


@pytest.mark.parametrize("bad", [-0.01, 3.01, np.nan, np.inf, -np.inf])
def test_type_out_of_range_raises(bad):
    with pytest.raises(ValueError):
        type_weights(np.array([1.0, bad]), 3.0)
