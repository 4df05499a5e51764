import pytest
from pydantic import ValidationError

from csst_photoz.pipeline.config import (
    CPU_BATCH_SIZE,
    CUDA_BATCH_SIZE,
    PipelineConfig,
    load_pipeline_config,
)


def _write(path, text):
    path.write_text(text)
    return path


def test_inference_batch_size_follows_the_device_unless_set():
    default = PipelineConfig()
    assert default.batch_size is None
    assert default.inference_batch_size("cpu") == CPU_BATCH_SIZE == 256
    assert default.inference_batch_size("cuda") == CUDA_BATCH_SIZE == 4096
    fixed = PipelineConfig(batch_size=1000)
    assert fixed.inference_batch_size("cpu") == fixed.inference_batch_size("cuda") == 1000
    with pytest.raises(ValidationError, match="batch_size"):
        PipelineConfig(batch_size=0)


def test_toml_pipeline_table_sets_the_batch_size(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("[pipeline]\nbatch_size = 512\nretries = 1\n")
    config = load_pipeline_config(path)
    assert config.inference_batch_size("cuda") == 512
    assert config.retries == 1
    path.write_text("[pipeline]\nbatch_sise = 512\n")
    with pytest.raises(ValueError, match="batch_sise"):
        load_pipeline_config(path)


def test_threads_is_the_key_and_torch_threads_its_older_name(tmp_path):
    assert PipelineConfig(threads=3).torch_threads == 3
    assert PipelineConfig(torch_threads=3) == PipelineConfig(threads=3)
    path = tmp_path / "run.toml"
    path.write_text("[pipeline]\ntorch_threads = 4\n")
    assert load_pipeline_config(path).torch_threads == 4
    path.write_text("[pipeline]\nthreads = 4\ntorch_threads = 2\n")
    with pytest.raises(ValueError, match=r"run\.toml[\s\S]*pipeline\.torch_threads"):
        load_pipeline_config(path)
    with pytest.raises(ValueError, match=r"pipeline\.threads"):
        load_pipeline_config(_write(path, "[pipeline]\nthreads = 0\n"))


def test_project_file_photometry_section_and_the_older_nested_table(tmp_path):
    path = _write(tmp_path / "p.toml", "[photometry]\nkron_factor = 2.0\n[training]\nseed = 1\n")
    assert load_pipeline_config(path).photometry.kron_factor == 2.0
    _write(path, "[pipeline]\nretries = 0\n[pipeline.photometry]\nkron_factor = 2.0\n")
    assert load_pipeline_config(path).photometry.kron_factor == 2.0
    with pytest.raises(ValueError, match=r"photometry\.kron: unknown key"):
        load_pipeline_config(_write(path, "[pipeline.photometry]\nkron = 2\n"))
    with pytest.raises(ValueError, match=r"no \[pipeline\] table"):
        load_pipeline_config(_write(path, "[training]\nseed = 1\n"))
    with pytest.raises(ValueError, match="pixel_scale_arcsec"):
        load_pipeline_config(_write(path, "pixel_scale_arcsec = 0.07\n"))


def test_run_settings_written_by_v0_1_still_match_todays_defaults():
    """A v0.1 run folder resumes: its recorded settings are today's defaults, key for key, but
    for ``photometry.snr_mask_neighbours`` (on since issue 18; off in 0.1.0, and in the record
    read back by `PhotometryConfig.from_recorded`): such a run resumes with it set to false."""
    import json
    from pathlib import Path

    from csst_photoz.photometry import PhotometryConfig

    run_json = Path(__file__).parents[1] / "fixtures" / "v0_1" / "run" / "run.json"
    recorded = json.loads(run_json.read_text())["pipeline"]
    photometry = PhotometryConfig.from_recorded(recorded["photometry"])
    assert photometry == PhotometryConfig(snr_mask_neighbours=False)
    config = PipelineConfig.model_validate({**recorded, "photometry": photometry.model_dump()})
    not_recorded = {"device", "batch_size", "torch_threads", "retries", "max_in_flight"}
    today = config.model_dump(mode="json", exclude=not_recorded)
    assert {**today, "photometry": config.photometry.recorded()} == recorded
    assert PipelineConfig.model_validate_json(config.model_dump_json()) == config
    assert PipelineConfig().photometry.recorded() != recorded["photometry"]  # default: refused
