import pytest
from pydantic import ValidationError

from csst_photoz.pipeline.config import (
    CPU_BATCH_SIZE,
    CUDA_BATCH_SIZE,
    PipelineConfig,
    load_pipeline_config,
)


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
