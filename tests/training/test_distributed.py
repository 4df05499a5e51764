import os
import subprocess
import sys
import textwrap

import pytest

from csst_photoz.models import load_model
from csst_photoz.training import read_log
from csst_photoz.training.distributed import distributed_context, resolve_device

# each rank trains one step and writes a SHA-256 of its weights and batch-norm statistics
RANK_SCRIPT = textwrap.dedent(
    """
    import hashlib, os, sys
    import torch
    torch.set_num_threads(1)
    from csst_photoz.training import TrainingConfig, train_model
    data, out, report = sys.argv[1:4]
    config = TrainingConfig(seed=3, batch_size=64, learning_rate=1e-2, flux_realisations=1,
                            max_epochs=1, progress=False)
    result = train_model("mlp", data, config, out, resume=False, device="cpu")
    digest = hashlib.sha256()
    for name, tensor in sorted(result.model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    rank = os.environ["RANK"]
    with open(os.path.join(report, f"rank{rank}.txt"), "w") as stream:
        stream.write(f"{digest.hexdigest()} {len(result.history)}")
    """
)


def test_two_cpu_processes_agree_on_the_weights_and_rank_zero_writes(stamp_set, tmp_path):
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    out = tmp_path / "ddp" / "mlp.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--standalone",
         str(script), str(stamp_set), str(out), str(tmp_path)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    reports = [(tmp_path / f"rank{r}.txt").read_text().split() for r in (0, 1)]
    assert reports[0][0] == reports[1][0]  # identical weights and statistics after the step
    assert (reports[0][1], reports[1][1]) == ("1", "0")  # only rank 0 keeps the history
    log = read_log(out.with_name("mlp.log.jsonl"))
    # 43 training galaxies x 1 copy over 2 processes of 32 samples: one step each
    assert [(r["epoch"], r["world_size"], r["steps"]) for r in log] == [(1, 2, 1)]
    model = load_model(out)
    assert model.checkpoint_metadata.training.world_size == 2
    assert model.sigma_scale != 1.0  # rank 0 calibrated it before writing it
    files = sorted(p.name for p in out.parent.iterdir())
    assert files == ["mlp.last.pt", "mlp.log.jsonl", "mlp.pt"]


def test_single_process_context_without_launcher_environment(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    with distributed_context("cpu") as context:
        assert (context.rank, context.world_size, context.is_main) == (0, 1, True)
        assert context.broadcast({"a": 1}) == {"a": 1} and context.sum([1.0, 2.0]) == [1.0, 2.0]
        context.barrier()


@pytest.mark.parametrize(
    ("device", "local_rank", "expected"),
    [("cpu", 3, "cpu"), ("cuda", 1, "cuda:1"), ("cuda:0", 1, "cuda:0")],
)
def test_devices_follow_the_local_rank(device, local_rank, expected):
    assert str(resolve_device(device, local_rank=local_rank)) == expected
