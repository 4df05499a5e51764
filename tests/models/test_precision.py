"""bf16_autocast: bfloat16 only on CUDA and only when asked."""

import pytest
import torch

from csst_photoz.models.precision import bf16_autocast


@pytest.mark.parametrize("enabled", [True, False])
def test_the_cpu_stays_float32(enabled):
    layer = torch.nn.Linear(4, 3)
    with bf16_autocast(torch.device("cpu"), enabled):
        assert layer(torch.ones(2, 4)).dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(("enabled", "dtype"), [(True, torch.bfloat16), (False, torch.float32)])
def test_cuda_matmuls_run_in_bfloat16_when_enabled(enabled, dtype):
    layer = torch.nn.Linear(4, 3).cuda()
    with bf16_autocast("cuda", enabled):
        assert layer(torch.ones(2, 4, device="cuda")).dtype == dtype
