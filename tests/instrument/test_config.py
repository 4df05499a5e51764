"""Tests for the instrument configuration: packaged defaults, TOML overrides, validation."""

import re

import numpy as np
import pytest
from pydantic import ValidationError

from csst_photoz.instrument import (
    CSST_BAND_ORDER,
    BandConfig,
    Instrument,
    InstrumentConfig,
    default_config_path,
    load_config,
)

# Zhou et al. 2022, Table 1 (see shared/PAPER.md), NUV..y
PAPER_BANDS = ("NUV", "u", "g", "r", "i", "z", "y")
PAPER_EXPOSURES = (4, 2, 2, 2, 2, 2, 4)
PAPER_SKY = (0.0023, 0.018, 0.142, 0.187, 0.187, 0.118, 0.035)

G_FIGURES = (
    "throughput = { blue_half_max_angstrom = 4010, red_half_max_angstrom = 5540, "
    "pivot_angstrom = 4783, peak_throughput = 0.632 }"
)


@pytest.fixture(scope="module")
def default_config():
    return load_config()


def _write_curve(path, blue, red, value, step=10.0):
    """A flat curve from ``blue`` to ``red`` (zero one step outside), as a two-column file."""
    wave = np.arange(blue - step, red + 1.5 * step, step)
    thr = np.where((wave >= blue) & (wave <= red), value, 0.0)
    np.savetxt(path, np.column_stack([wave, thr]), header="wavelength throughput")
    return path


# -- defaults --------------------------------------------------------------------------------


def test_defaults_are_the_paper_values(default_config):
    cfg = default_config
    assert cfg.aperture_diameter_m == 2.0
    assert cfg.central_obscuration == 0.0
    assert cfg.pixel_scale_arcsec == 0.075
    assert cfg.exposure_time_s == 150.0
    assert cfg.dark_current_e_per_s == 0.02
    assert cfg.read_noise_e == 5.0


def test_default_bands_in_paper_order_with_paper_exposures_and_sky(default_config):
    assert tuple(default_config.bands) == PAPER_BANDS
    assert CSST_BAND_ORDER == PAPER_BANDS
    assert tuple(b.n_exposures for b in default_config.bands.values()) == PAPER_EXPOSURES
    assert tuple(b.sky_e_per_s for b in default_config.bands.values()) == PAPER_SKY


def test_default_bands_use_the_smooth_model(default_config):
    for band in default_config.bands.values():
        assert band.throughput is not None
        assert band.throughput_file is None


def test_default_config_file_is_packaged():
    path = default_config_path()
    assert path.is_file()
    assert path.name == "csst.toml"


def test_instrument_default_uses_the_defaults(default_config):
    assert Instrument.default().config == default_config


# -- overrides -------------------------------------------------------------------------------


def test_keyword_override_changes_only_that_value(default_config):
    inst = Instrument.default(pixel_scale_arcsec=0.074)
    assert inst.config.pixel_scale_arcsec == 0.074
    assert inst.config.exposure_time_s == 150.0
    assert inst.config.bands == default_config.bands
    # the new pixel puts more pixels (more background) into the depth aperture: shallower
    assert inst.point_source_depth("g") < Instrument.default().point_source_depth("g")


def test_keyword_override_of_one_band_value_keeps_the_rest(default_config):
    cfg = load_config(bands={"y": {"n_exposures": 6}})
    assert cfg.bands["y"].n_exposures == 6
    assert cfg.bands["y"].sky_e_per_s == 0.035
    assert cfg.bands["y"].throughput == default_config.bands["y"].throughput
    assert cfg.bands["g"] == default_config.bands["g"]


def test_user_toml_overrides_one_band_and_keeps_the_others(tmp_path, default_config):
    path = tmp_path / "mine.toml"
    path.write_text("read_noise_e = 4.0\n\n[bands.y]\nn_exposures = 6\n")
    inst = Instrument.from_toml(path)
    cfg = inst.config
    assert cfg.read_noise_e == 4.0
    assert cfg.pixel_scale_arcsec == 0.075
    assert cfg.bands["y"].n_exposures == 6
    assert cfg.bands["y"].sky_e_per_s == 0.035
    assert tuple(b.n_exposures for b in cfg.bands.values()) == (4, 2, 2, 2, 2, 2, 6)
    assert tuple(cfg.bands) == PAPER_BANDS
    assert inst.exposure_time("y") == 900.0


def test_keywords_override_the_user_toml(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text("read_noise_e = 4.0\npixel_scale_arcsec = 0.08\n")
    cfg = Instrument.from_toml(path, read_noise_e=3.0).config
    assert cfg.read_noise_e == 3.0
    assert cfg.pixel_scale_arcsec == 0.08


def test_throughput_file_is_relative_to_the_toml_and_replaces_the_model(
    tmp_path, monkeypatch, default_config
):
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    _write_curve(config_dir / "y.fil", 9300.0, 9800.0, 0.4)
    path = config_dir / "inst.toml"
    path.write_text('[bands.y]\nthroughput_file = "y.fil"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # a path taken relative to the working folder would not exist

    inst = Instrument.from_toml(path)
    band = inst.config.bands["y"]
    assert band.throughput is None
    assert band.throughput_file.resolve() == (config_dir / "y.fil").resolve()
    assert band.n_exposures == 4  # the rest of the band is kept

    curve = inst.bandpasses["y"]
    assert curve.name == "y"
    assert curve.peak_throughput == 0.4
    # ramps of one 10 A step at each end: half maximum 5 A outside the flat part
    assert curve.half_max_edges == pytest.approx((9295.0, 9805.0), abs=1e-9)
    expected_pivot = np.sqrt((9800.0**2 - 9300.0**2) / (2 * np.log(9800.0 / 9300.0)))
    assert curve.pivot_wavelength == pytest.approx(expected_pivot, abs=2.0)
    # the other bands keep the model
    assert inst.config.bands["g"] == default_config.bands["g"]
    assert inst.bandpasses["g"].peak_throughput == pytest.approx(0.632, abs=1e-9)


def test_throughput_file_in_a_subfolder(tmp_path):
    (tmp_path / "curves").mkdir()
    _write_curve(tmp_path / "curves" / "my_g.dat", 4000.0, 5500.0, 0.7)
    path = tmp_path / "inst.toml"
    path.write_text('[bands.g]\nthroughput_file = "curves/my_g.dat"\n')
    inst = Instrument.from_toml(path)
    assert inst.bandpasses["g"].peak_throughput == 0.7
    assert inst.bandpasses["g"].source == str(tmp_path / "curves" / "my_g.dat")


def test_model_figures_replace_a_throughput_file(tmp_path):
    _write_curve(tmp_path / "g.fil", 4000.0, 5500.0, 0.7)
    path = tmp_path / "inst.toml"
    path.write_text('[bands.g]\nthroughput_file = "g.fil"\n')
    cfg = load_config(
        path,
        bands={
            "g": {
                "throughput": {
                    "blue_half_max_angstrom": 4000.0,
                    "red_half_max_angstrom": 5500.0,
                    "pivot_angstrom": 4720.0,
                    "peak_throughput": 0.6,
                }
            }
        },
    )
    assert cfg.bands["g"].throughput_file is None
    assert cfg.bands["g"].throughput.pivot_angstrom == 4720.0


def test_user_toml_can_add_a_band(tmp_path):
    _write_curve(tmp_path / "w.fil", 6000.0, 7000.0, 0.5)
    path = tmp_path / "inst.toml"
    path.write_text('[bands.w]\nn_exposures = 3\nsky_e_per_s = 0.1\nthroughput_file = "w.fil"\n')
    inst = Instrument.from_toml(path)
    assert inst.band_names == (*PAPER_BANDS, "w")
    assert inst.exposure_time("w") == 450.0


# -- errors ----------------------------------------------------------------------------------


def test_unknown_top_level_key_is_named(tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text("pixel_scal_arcsec = 0.074\n")
    with pytest.raises(ValueError, match="pixel_scal_arcsec") as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_unknown_band_key_is_named(tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text("[bands.g]\nn_exposure = 3\n")
    with pytest.raises(ValueError, match=r"bands\.g\.n_exposure\b"):
        load_config(path)


def test_unknown_keyword_override_is_named():
    with pytest.raises(ValueError, match=r"keyword overrides pixel_scale\)[\s\S]*pixel_scale\b"):
        Instrument.default(pixel_scale=0.074)


def test_model_figures_out_of_order_are_rejected_when_loading(tmp_path):
    path = tmp_path / "order.toml"
    path.write_text("[bands.g.throughput]\npivot_angstrom = 5600\n")
    with pytest.raises(ValueError, match=r"order\.toml[\s\S]*pivot_angstrom < red_half_max"):
        load_config(path)


def test_non_string_throughput_file_is_a_value_error_naming_the_file(tmp_path):
    path = tmp_path / "number.toml"
    path.write_text("[bands.y]\nthroughput_file = 5\n")
    with pytest.raises(ValueError, match=r"number\.toml[\s\S]*throughput_file"):
        load_config(path)


def test_unknown_key_in_model_figures_is_named(tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text("[bands.g.throughput]\npivot = 4800\n")
    with pytest.raises(ValueError, match=r"bands\.g\.throughput\.pivot\b"):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("pixel_scale_arcsec = -0.075\n", "pixel_scale_arcsec"),
        ("central_obscuration = 1.0\n", "central_obscuration"),
        ("[bands.g]\nn_exposures = 0\n", r"bands\.g\.n_exposures"),
        ("[bands.g]\nsky_e_per_s = -1.0\n", r"bands\.g\.sky_e_per_s"),
        ("[bands.g.throughput]\npeak_throughput = 1.5\n", r"bands\.g\.throughput\.peak_throughput"),
        ('exposure_time_s = "long"\n', "exposure_time_s"),
    ],
)
def test_out_of_range_values_are_named(tmp_path, text, key):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=key):
        load_config(path)


def test_malformed_toml_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[bands.g\nn_exposures = 3\n")
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*not valid TOML"):
        load_config(path)


def test_missing_toml_names_the_path(tmp_path):
    path = tmp_path / "absent.toml"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        Instrument.from_toml(path)


def test_missing_throughput_file_names_the_path(tmp_path):
    path = tmp_path / "inst.toml"
    path.write_text('[bands.y]\nthroughput_file = "nope.fil"\n')
    inst = Instrument.from_toml(path)  # files are read when the curves are needed
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nope.fil"))):
        _ = inst.bandpasses


def test_band_with_both_throughput_and_file_is_an_error(tmp_path):
    _write_curve(tmp_path / "g.fil", 4000.0, 5500.0, 0.7)
    path = tmp_path / "both.toml"
    path.write_text(f'[bands.g]\nthroughput_file = "g.fil"\n{G_FIGURES}\n')
    with pytest.raises(ValueError, match=r"bands\.g[\s\S]*exactly one of 'throughput'"):
        load_config(path)


def test_new_band_without_throughput_is_an_error(tmp_path):
    path = tmp_path / "partial.toml"
    path.write_text("[bands.w]\nn_exposures = 2\nsky_e_per_s = 0.1\n")
    with pytest.raises(ValueError, match=r"bands\.w[\s\S]*exactly one of"):
        load_config(path)


def test_no_bands_is_an_error():
    with pytest.raises(ValueError, match="at least one band"):
        InstrumentConfig.model_validate(
            {
                "aperture_diameter_m": 2.0,
                "central_obscuration": 0.0,
                "pixel_scale_arcsec": 0.075,
                "exposure_time_s": 150.0,
                "dark_current_e_per_s": 0.02,
                "read_noise_e": 5.0,
                "psf_jitter_fwhm_arcsec": 0.1,
                "bands": {},
            }
        )


@pytest.mark.parametrize("text", ["bands = 3\n", 'bands = ["g", "r"]\n'])
def test_bands_that_is_not_a_table_is_a_value_error(tmp_path, text):
    path = tmp_path / "flat.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*'bands' must be a table"):
        load_config(path)


# -- project files ---------------------------------------------------------------------------


def test_instrument_section_of_a_project_file_is_read(tmp_path):
    path = tmp_path / "project.toml"
    path.write_text(
        "[instrument]\npixel_scale_arcsec = 0.074\n[instrument.bands.y]\nn_exposures = 6\n"
        "[training]\nseed = 3\n[pipeline]\nretries = 1\n"
    )
    top_level = tmp_path / "my_csst.toml"
    top_level.write_text("pixel_scale_arcsec = 0.074\n[bands.y]\nn_exposures = 6\n")
    assert Instrument.from_toml(path).config == load_config(top_level)
    assert load_config(path).bands["y"].n_exposures == 6


def test_project_file_without_an_instrument_section_gives_the_defaults(tmp_path, default_config):
    path = tmp_path / "train.toml"
    path.write_text("[training]\nseed = 3\n")
    assert load_config(path) == default_config


def test_top_level_keys_beside_sections_are_an_error(tmp_path):
    path = tmp_path / "mixed.toml"
    path.write_text("pixel_scale_arcsec = 0.074\n[training]\nseed = 3\n")
    with pytest.raises(ValueError, match=r"mixed\.toml: unknown top-level key\(s\) \['pixel_scale"):
        load_config(path)


def test_unknown_key_in_the_instrument_section_names_file_section_and_key(tmp_path):
    path = tmp_path / "project.toml"
    path.write_text("[instrument.bands.g]\nn_exposure = 3\n")
    with pytest.raises(ValueError, match=r"project\.toml[\s\S]*instrument\.bands\.g\.n_exposure: "):
        load_config(path)


def test_package_default_file_keeps_its_top_level_layout():
    import tomllib

    document = tomllib.loads(default_config_path().read_text())
    assert "instrument" not in document and "pixel_scale_arcsec" in document
    assert load_config(default_config_path()) == load_config()


# -- immutability ----------------------------------------------------------------------------


def test_config_values_cannot_be_assigned(default_config):
    with pytest.raises(ValidationError, match="frozen"):
        default_config.pixel_scale_arcsec = 0.1
    with pytest.raises(ValidationError, match="frozen"):
        default_config.bands["g"].n_exposures = 3
    with pytest.raises(ValidationError, match="frozen"):
        default_config.bands["g"].throughput.peak_throughput = 0.5
    assert default_config.pixel_scale_arcsec == 0.075
    assert default_config.bands["g"].n_exposures == 2


def test_instrument_config_cannot_be_replaced():
    inst = Instrument.default()
    with pytest.raises(AttributeError):
        inst.config = load_config(pixel_scale_arcsec=0.074)
    assert inst.config.pixel_scale_arcsec == 0.075


def test_band_table_cannot_be_changed_in_place():
    cfg = load_config()
    extra = BandConfig(n_exposures=1, sky_e_per_s=0.0, throughput_file="x.fil")
    with pytest.raises(TypeError):
        cfg.bands["w"] = extra
    with pytest.raises(TypeError):
        del cfg.bands["g"]
    assert tuple(cfg.bands) == PAPER_BANDS


def test_read_only_band_table_still_serialises_and_round_trips():
    cfg = load_config()
    dumped = cfg.model_dump()
    assert isinstance(dumped["bands"], dict)
    assert list(dumped["bands"]) == list(PAPER_BANDS)
    assert dumped["bands"]["g"]["n_exposures"] == 2
    assert InstrumentConfig.model_validate(dumped) == cfg
    again = InstrumentConfig.model_validate_json(cfg.model_dump_json())
    assert again == cfg
