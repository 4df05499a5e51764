"""The batch processor on a GPU worker gives the CPU catalogue (to float32 rounding)."""

import numpy as np
import pytest

from csst_photoz.pipeline import PipelineConfig, connect, run

pytestmark = pytest.mark.gpu


def test_cuda_run_matches_the_cpu_run(tmp_path, field, checkpoints, read_catalogue):
    cupy = pytest.importorskip("cupy")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available() or cupy.cuda.runtime.getDeviceCount() == 0:
        pytest.skip("no CUDA device")
    with connect(n_workers=1) as client:
        for device in ("cpu", "cuda"):
            config = PipelineConfig(device=device, mixed_precision=False)
            run(field, tmp_path / device, models=checkpoints, client=client, config=config,
                progress=False)  # fmt: skip
    cpu, gpu = read_catalogue(tmp_path / "cpu"), read_catalogue(tmp_path / "cuda")
    assert cpu["object_id"].equals(gpu["object_id"])
    for name in ("x", "y", "flux_i", "flux_err_i", "z_mlp", "z_cnn"):
        np.testing.assert_allclose(gpu[name].to_numpy(), cpu[name].to_numpy(), rtol=2e-4,
                                   atol=1e-4, err_msg=name)  # fmt: skip
