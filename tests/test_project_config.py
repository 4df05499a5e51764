"""The project TOML file: five sections, one loader, old shapes, ``--set`` overrides."""

import re
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

from csst_photoz.config_files import SECTIONS, apply_assignments, parse_assignment
from csst_photoz.instrument import InstrumentConfig, load_config
from csst_photoz.photometry import PhotometryConfig
from csst_photoz.pipeline.config import PipelineConfig
from csst_photoz.project_config import ProjectConfig, load_project_config
from csst_photoz.sim import SimulationConfig
from csst_photoz.training.config import TrainingConfig

FIXTURES = Path(__file__).parent / "fixtures" / "v0_1"

ALL_SECTIONS = """\
[instrument]
pixel_scale_arcsec = 0.074
[instrument.bands.y]
n_exposures = 6

[simulation]
noise = false
cosmic_rays_per_mpix = 2.5

[photometry]
kron_factor = 2.5

[training]
seed = 7
batch_size = 256
[training.cnn]
max_epochs = 40

[pipeline]
batch_size = 1024
threads = 2
"""


def _write(tmp_path, text, name="project.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_one_file_holds_all_five_sections(tmp_path):
    project = load_project_config(_write(tmp_path, ALL_SECTIONS))
    assert project.instrument.pixel_scale_arcsec == 0.074
    assert project.instrument.bands["y"].n_exposures == 6
    assert project.instrument.bands["g"] == load_config().bands["g"]  # merged over defaults
    assert project.simulation.detector_effects().noise is False
    assert project.simulation.detector_effects().cosmic_rays_per_mpix == 2.5
    assert project.photometry.kron_factor == 2.5
    assert project.pipeline.photometry == project.photometry
    assert (project.training.seed, project.training.batch_size) == (7, 256)
    assert project.training.schedule("cnn").max_epochs == 40
    assert project.pipeline.inference_batch_size("cpu") == 1024
    assert project.pipeline.torch_threads == 2


def test_no_file_gives_every_models_defaults():
    project = load_project_config()
    assert project == ProjectConfig(instrument=load_config())
    assert project.simulation == SimulationConfig()
    assert project.photometry == PhotometryConfig()
    assert project.training == TrainingConfig()
    assert project.pipeline == PipelineConfig()


def test_readme_instrument_file_with_top_level_keys_still_loads(tmp_path):
    (tmp_path / "y_measured.txt").write_text("9000 0.0\n9500 0.5\n10000 0.0\n")
    path = _write(
        tmp_path,
        "pixel_scale_arcsec = 0.074\n\n[bands.y]\nn_exposures = 6\n"
        'throughput_file = "y_measured.txt"\n',
        "my_csst.toml",
    )
    project = load_project_config(path)
    assert project.instrument.pixel_scale_arcsec == 0.074
    assert project.instrument.bands["y"].throughput_file == tmp_path / "y_measured.txt"
    assert project.instrument == load_config(path)
    assert project.training == TrainingConfig()


def test_training_only_file_written_by_v0_1_still_loads():
    from csst_photoz.training.config import load_config as load_training

    project = load_project_config(FIXTURES / "train.toml")
    assert project.training == load_training(FIXTURES / "train.toml")
    assert (project.training.seed, project.training.batch_size) == (3, 16)
    assert project.pipeline == PipelineConfig()


def test_pipeline_only_file_with_nested_photometry_still_loads(tmp_path):
    path = _write(
        tmp_path, "[pipeline]\nbatch_size = 512\n[pipeline.photometry]\nkron_factor = 2.0\n"
    )
    project = load_project_config(path)
    assert project.photometry.kron_factor == 2.0
    assert project.pipeline.photometry.kron_factor == 2.0
    assert project.pipeline.batch_size == 512


def test_photometry_given_twice_is_an_error(tmp_path):
    path = _write(tmp_path, "[photometry]\nmin_area = 4\n[pipeline.photometry]\nmin_area = 6\n")
    with pytest.raises(ValueError, match=r"project\.toml.*given twice"):
        load_project_config(path)


def test_relative_paths_are_relative_to_the_file(tmp_path):
    folder = tmp_path / "conf"
    folder.mkdir()
    path = _write(folder, "[training]\nmlp_checkpoint = 'ckpt/mlp.pt'\n")
    project = load_project_config(path, overrides=["training.cnn_checkpoint='c.pt'"])
    assert project.training.mlp_checkpoint == folder / "ckpt" / "mlp.pt"
    assert project.training.cnn_checkpoint == Path("c.pt")  # command line: the working dir


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[simulaton]\nnoise = false\n", "simulaton"),
        ("[training]\nlearning_rte = 0.1\n", "training.learning_rte: unknown key"),
        ("[training.cnn]\npatience = 2\n", "training.cnn.patience: unknown key"),
        ("[simulation]\nnoise_level = 2\n", "simulation.noise_level: unknown key"),
        ("[photometry]\nkron = 2\n", "photometry.kron: unknown key"),
        ("[pipeline]\nbatch_sise = 2\n", "pipeline.batch_sise: unknown key"),
        ("[instrument]\npixel_scale = 0.07\n", "instrument.pixel_scale: unknown key"),
        ("[instrument.bands.g]\nn_exposure = 3\n", r"instrument.bands.g.n_exposure: unknown"),
        ("[simulation]\nhot_pixel_fraction = 0.5\n", "simulation.hot_pixel_fraction"),
        ("pixel_scale_arcsec = 0.074\n[training]\nseed = 1\n", "pixel_scale_arcsec"),
        ("training = 3\n", "'training' must be a table"),
        ("[training]\nseed = \n", "not valid TOML"),
    ],
)
def test_errors_name_the_file_the_section_and_the_key(tmp_path, text, named):
    with pytest.raises(ValueError, match=re.escape(named)) as info:
        load_project_config(_write(tmp_path, text, "bad.toml"))
    assert "bad.toml" in str(info.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"absent\.toml"):
        load_project_config(tmp_path / "absent.toml")


def test_set_overrides_the_file_and_is_validated_by_the_same_models(tmp_path):
    path = _write(tmp_path, ALL_SECTIONS)
    project = load_project_config(
        path,
        overrides=[
            "training.seed=11",
            "training.learning_rate=1e-3",
            "simulation.paper_setup=true",
            "pipeline.device=cpu",  # not TOML: a plain string
            'pipeline.photometry.detection_bands=["r", "i"]',  # the older spelling
            "instrument.bands.y.n_exposures=8",
            "training.seed=12",  # later wins
        ],
    )
    assert (project.training.seed, project.training.learning_rate) == (12, 1e-3)
    assert project.simulation.render_settings().paper_setup is True
    assert project.pipeline.device == "cpu"
    assert (
        project.photometry.detection_bands
        == ("r", "i")
        == project.pipeline.photometry.detection_bands
    )
    assert project.instrument.bands["y"].n_exposures == 8
    assert project.instrument.pixel_scale_arcsec == 0.074  # the rest of the file stays
    with pytest.raises(ValueError, match=r"training\.sed: unknown key"):
        load_project_config(path, overrides=["training.sed=3"])
    with pytest.raises(ValueError, match=r"training\.batch_size"):
        load_project_config(path, overrides=["training.batch_size=0"])
    with pytest.raises(ValueError, match=r"pipeline\.device"):
        load_project_config(overrides=["pipeline.device=tpu"])


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("training.seed", "expected section.key=value"),
        ("seed=3", "expected section.key=value"),
        ("training.=3", "expected section.key=value"),
        ("model.width=3", "unknown section 'model'"),
    ],
)
def test_malformed_set_overrides_are_errors(text, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        parse_assignment(text)


def test_set_values_are_toml_values():
    assert parse_assignment("training.seed=3") == (("training", "seed"), 3)
    assert parse_assignment("training.learning_rate = 5e-4") == (
        ("training", "learning_rate"),
        5e-4,
    )
    assert parse_assignment("simulation.noise=false") == (("simulation", "noise"), False)
    assert parse_assignment("pipeline.device='cuda'") == (("pipeline", "device"), "cuda")
    assert parse_assignment("pipeline.device=cuda") == (("pipeline", "device"), "cuda")
    assert parse_assignment("training.limiting_flux=[1, 2.5]")[1] == [1, 2.5]
    assert parse_assignment("pipeline.photometry.min_area=4") == (("photometry", "min_area"), 4)
    with pytest.raises(ValueError, match="is not a table"):
        apply_assignments({"training": {"seed": 1}}, ["training.seed.x=2"])


def test_project_config_is_frozen_and_keeps_one_photometry():
    project = load_project_config()
    with pytest.raises(ValueError, match="frozen"):
        project.training = TrainingConfig(seed=3)
    with pytest.raises(ValueError, match="photometry section"):
        ProjectConfig(instrument=load_config(), photometry=PhotometryConfig(min_area=3))
    assert SECTIONS == tuple(ProjectConfig.model_fields)
    assert isinstance(project.instrument, InstrumentConfig)


# -- docs/configuration.md -------------------------------------------------------------------

DOC = Path(__file__).parents[1] / "docs" / "configuration.md"


def _doc_tables():
    """Section -> {key: default cell} from the doc's "Keys and defaults" tables."""
    tables, section = {}, None
    for line in DOC.read_text().split("## Keys and defaults", 1)[1].splitlines():
        heading = re.fullmatch(r"### `\[(\w+)\]`", line)
        if heading:
            section = tables.setdefault(heading.group(1), {})
        elif section is not None and line.startswith("| `"):
            key, default = (cell.strip() for cell in line.split("|")[1:3])
            section[key.strip("`")] = default
    return tables


def _toml_key(model, name):
    alias = model.model_fields[name].validation_alias
    return alias.choices[0] if alias is not None else name


def _flat_defaults(model, prefix=""):
    """Dotted TOML key -> JSON default of a model instance (nested models flattened)."""
    dumped = model.model_dump(mode="json")
    for name in type(model).model_fields:
        value = getattr(model, name)
        key = prefix + _toml_key(type(model), name)
        if isinstance(value, PhotometryConfig) and prefix == "" and key == "photometry":
            continue  # the pipeline's photometry is the [photometry] section
        if isinstance(value, BaseModel):
            yield from _flat_defaults(value, key + ".")
        else:
            yield key, dumped[name]


def test_doc_lists_every_key_of_every_section_with_its_default():
    tables = _doc_tables()
    assert tuple(tables) == SECTIONS
    defaults = load_project_config()
    for section in ("simulation", "photometry", "training", "pipeline"):
        expected = dict(_flat_defaults(getattr(defaults, section)))
        documented = tables[section]
        assert set(documented) == set(expected), section
        for key, value in expected.items():
            cell = documented[key]
            if value is None:
                assert cell == "unset", (section, key)
            else:
                parsed = tomllib.loads(f"v = {cell.strip('`')}")["v"]
                assert parsed == value, (section, key, cell)


def test_doc_lists_every_instrument_key_and_the_packaged_defaults():
    from csst_photoz.instrument.config import BandConfig, ThroughputFigures

    documented = _doc_tables()["instrument"]
    top = [name for name in InstrumentConfig.model_fields if name != "bands"]
    band = [f"bands.<band>.{name}" for name in BandConfig.model_fields if name != "throughput"]
    figures = [f"bands.<band>.throughput.{name}" for name in ThroughputFigures.model_fields]
    assert set(documented) == {*top, *band, *figures}
    packaged = load_config()
    for name in top:
        assert tomllib.loads(f"v = {documented[name].strip('`')}")["v"] == getattr(packaged, name)


def test_doc_example_holds_all_five_sections_and_loads(tmp_path):
    example = re.search(r"```toml\n(# project\.toml.*?)```", DOC.read_text(), re.S).group(1)
    assert set(tomllib.loads(example)) == set(SECTIONS)
    project = load_project_config(_write(tmp_path, example))
    assert project.instrument.bands["y"].n_exposures == 6
    assert project.pipeline.photometry.kron_factor == 2.5


def test_simulation_config_covers_the_render_settings_and_detector_effects():
    import dataclasses

    from csst_photoz.sim.render import RenderSettings
    from csst_photoz.sim.tiles import DetectorEffects

    render = {f.name for f in dataclasses.fields(RenderSettings)} - {"gsparams"}
    assert render | set(DetectorEffects.model_fields) == set(SimulationConfig.model_fields)
    assert SimulationConfig().render_settings() == RenderSettings()
    assert SimulationConfig().detector_effects() == DetectorEffects()
    custom = SimulationConfig(paper_setup=True, bulge_truncation=4.0, noise=False, bright_stars=2)
    assert custom.render_settings() == RenderSettings(paper_setup=True, bulge_truncation=4.0)
    assert custom.detector_effects() == DetectorEffects(noise=False, bright_stars=2)
