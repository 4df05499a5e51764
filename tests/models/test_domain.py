"""The per-galaxy domain flag and the clamping of predictions, on constructed inputs."""

import base64
from pathlib import Path

import numpy as np
import pytest

from csst_photoz.io.checkpoint_metadata import DomainReference
from csst_photoz.models import MLP, MLPConfig, load_model, save_model
from csst_photoz.models.domain import (
    DEFAULT_Z_RANGE,
    DomainCheck,
    DomainFlag,
    clamp_estimates,
    fit_domain,
    flag_description,
)

V0_1 = Path(__file__).parents[1] / "fixtures" / "v0_1"
LIMITS = np.array([50.0, 60.0, 70.0, 80.0, 90.0])


def _training_set(n: int = 3000, seed: int = 0):
    """Fluxes along a redshift-dependent colour track, S/N of at least about 10."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.2, 2.5, n)
    slope = np.linspace(-1.0, 1.0, LIMITS.size)
    brightness = rng.uniform(500.0, 5000.0, n)
    fluxes = brightness[:, None] * np.exp(np.outer(z - 1.3, slope))
    fluxes *= rng.lognormal(0.0, 0.05, fluxes.shape)
    errors = np.full_like(fluxes, 20.0)
    return z, fluxes, errors


@pytest.fixture(scope="module")
def reference() -> DomainReference:
    z, fluxes, errors = _training_set()
    return fit_domain(z, fluxes, errors, LIMITS, seed=1)


def test_fit_records_the_trained_range_selection_and_a_small_reference(reference):
    z, fluxes, errors = _training_set()
    assert (reference.z_min, reference.z_max) == (z.min(), z.max())
    assert reference.sigma_max == pytest.approx(z.max() - z.min())
    snr = (fluxes / errors).max(axis=1)
    assert reference.snr_min == pytest.approx(np.quantile(snr, 0.01))
    assert reference.reference_rows == 2000 and reference.k == 5
    assert len(base64.b64decode(reference.reference)) == 2000 * 4 * 2  # float16 colours
    assert reference.distance_max > 0
    # the training rows themselves are inside (about 1 % beyond each threshold)
    flags = DomainCheck(reference).input_flags(fluxes, errors, len(z))
    assert np.mean(flags == 0) > 0.95


def test_each_input_flag_bit(reference):
    _, fluxes, errors = _training_set(5, seed=3)
    rows = np.repeat(fluxes[:1], 4, axis=0)
    rows[1] /= 1000.0  # far fainter than any training galaxy: S/N < 1
    rows[2, 0] *= 1e4  # a colour no training galaxy has, still bright
    rows[3, 2] = np.nan  # a missing band
    errs = np.repeat(errors[:1], 4, axis=0)
    flags = DomainCheck(reference).input_flags(rows, errs, 4)
    assert flags.dtype == np.uint16
    assert flags[0] == 0
    assert flags[1] & DomainFlag.OUTSIDE_SELECTION
    assert flags[2] == DomainFlag.OUTSIDE_COLOUR_SPACE
    assert flags[3] == DomainFlag.MISSING_BANDS


def test_clamping_to_the_trained_range_sets_the_flag(reference):
    check = DomainCheck(reference)
    z = np.array([-3.0, 1.0, 16.5, np.nan, 1.0], np.float32)
    sigma = np.array([0.1, 0.1, 0.1, 0.1, 585.0], np.float32)
    clamped, capped, flags = clamp_estimates(check, z, sigma)
    np.testing.assert_allclose(
        clamped, [reference.z_min, 1.0, reference.z_max, np.nan, 1.0], rtol=1e-6
    )
    np.testing.assert_allclose(capped, [0.1, 0.1, 0.1, 0.1, reference.sigma_max], rtol=1e-6)
    assert flags.tolist() == [8, 0, 8, 0, 8]
    assert DomainCheck(None).z_range == DEFAULT_Z_RANGE == (0.0, 4.0)
    # without a reference (an old checkpoint) the values stay, the flag marks those outside 0..4
    same_z, same_sigma, flags = clamp_estimates(DomainCheck(None), z, sigma)
    assert same_z is z and same_sigma is sigma
    assert flags.tolist() == [8, 0, 8, 0, 8]


def test_the_domain_travels_in_the_checkpoint_and_predictions_carry_the_flag(reference, tmp_path):
    bands = tuple("abcde")
    model = MLP(MLPConfig(bands=bands, limiting_flux=LIMITS.tolist(), missing="indicator"))
    model.set_domain(reference)
    path = save_model(model, tmp_path / "mlp.pt")
    loaded = load_model(path)
    assert loaded.domain == reference == loaded.checkpoint_metadata.domain
    _, fluxes, errors = _training_set(4, seed=5)
    fluxes[3, 1] = np.nan
    estimate = loaded.predict(fluxes, errors)
    assert estimate.flag.dtype == np.uint16
    assert estimate.flag[3] & DomainFlag.MISSING_BANDS
    assert np.all((estimate.z >= reference.z_min) & (estimate.z <= reference.z_max))
    same = model.predict(fluxes, errors)  # the saving model, same domain: same flags
    np.testing.assert_array_equal(same.flag, estimate.flag)


def test_a_checkpoint_without_a_domain_flags_only_missing_bands_and_clamping():
    model = load_model(V0_1 / "mlp.pt")
    limits = np.asarray(model.config.limiting_flux)
    fluxes = np.tile(limits * 20.0, (3, 1))
    errors = np.tile(limits / 5.0, (3, 1))
    fluxes[1] /= 1000.0  # faint: not flagged without a reference
    fluxes[2, 0] = np.nan
    estimate = model.predict(fluxes, errors)
    assert estimate.flag[0] & ~DomainFlag.CLAMPED == 0
    assert estimate.flag[1] & ~DomainFlag.CLAMPED == 0
    assert estimate.flag[2] & DomainFlag.MISSING_BANDS
    assert np.isnan(estimate.z[2])  # the old layout still propagates NaN
    outside = (estimate.z[:2] < 0) | (estimate.z[:2] > 4) | (estimate.z_err[:2] > 4)
    np.testing.assert_array_equal((estimate.flag[:2] & DomainFlag.CLAMPED) > 0, outside)


def test_the_flag_description_names_every_bit():
    text = flag_description("z_mlp")
    assert all(flag.name in text for flag in DomainFlag)
