"""The shared constants are the ones every layer uses (one definition, re-exported names)."""

import astropy.units as u

from csst_photoz.constants import AB_ZERO_POINT_NJY, CSST_BANDS
from csst_photoz.instrument import CSST_BAND_ORDER
from csst_photoz.io import tile_fits


def test_the_ab_zero_point_is_3631_jansky():
    assert (AB_ZERO_POINT_NJY * u.nJy).to_value(u.Jy) == 3631.0


def test_the_band_order_is_one_object_under_its_public_names():
    assert CSST_BANDS == ("NUV", "u", "g", "r", "i", "z", "y")
    assert CSST_BAND_ORDER is CSST_BANDS
    assert tile_fits.CSST_BANDS is CSST_BANDS
