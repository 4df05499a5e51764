"""Smoke tests of the inference, training and Parquet-write benchmark scripts on tiny inputs.

The scripts run as subprocesses, as a user runs them (they pin the thread pools of the process
they run in before NumPy and torch are imported).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *args], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow  # a benchmark script end to end (5-25 s); run with -m slow
def test_inference_benchmark_runs_on_tiny_batches(tmp_path):
    run_script(
        "inference.py", "--tile-size", "256", "--batch-sizes", "8", "16", "--repeats", "1",
        "--min-time", "0", "--out", str(tmp_path),
    )  # fmt: skip
    result = json.loads((tmp_path / "inference_cpu.json").read_text())
    assert (tmp_path / "inference_cpu.md").read_text().startswith("# Inference throughput")
    environment = result["environment"]
    assert environment["threads"]["OMP_NUM_THREADS"] == "1" and environment["torch_threads"] == 1
    assert len(environment["load_average_at_start"]) == 3 and result["load_average_at_end"]
    assert result["tile"]["detected_sources"] > 0
    assert {"mlp", "cnn", "hybrid"} <= set(result["models"])
    assert all(info["flops_per_galaxy"] > 0 for info in result["models"].values())
    # the CNN's convolutions dwarf the MLP's dense layers
    assert result["models"]["cnn"]["flops_per_galaxy"] > result["models"]["mlp"]["flops_per_galaxy"]
    rows = result["inference"]
    expected = {
        (m, b, p) for m in result["models"] for b in (8, 16) for p in ("fp32", "bf16")
    }  # fmt: skip
    assert {(r["model"], r["batch_size"], r["precision"]) for r in rows} == expected
    for row in rows:
        assert row["galaxies_per_s"] > 0 and row["gflop_per_s"] > 0
        assert 0 < row["p50_ms"] <= row["p99_ms"] and row["batches_timed"] >= 1
        assert row["finite_fraction"] > 0
    bf16 = [r for r in rows if r["precision"] == "bf16"]
    assert all(r["dz_vs_fp32"] is not None for r in bf16)
    # bf16 autocast took effect (bfloat16 keeps 8 bits of mantissa)
    assert max(r["dz_vs_fp32"]["max_abs_dz"] for r in bf16) > 0
    assert [r["batch_size"] for r in result["stamps"]] == [8, 16]
    assert all(r["galaxies_per_s"] > 0 for r in result["stamps"])


@pytest.mark.slow  # a benchmark script end to end (5-25 s); run with -m slow
def test_parquet_write_benchmark_runs_on_a_tiny_table(tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    run_script(
        "parquet_write.py", "--tile-size", "256", "--rows", "500", "--repeats", "1",
        "--scratch", str(scratch), "--out", str(tmp_path / "out"),
    )  # fmt: skip
    result = json.loads((tmp_path / "out" / "parquet_write.json").read_text())
    assert (tmp_path / "out" / "parquet_write.md").read_text().startswith("# Parquet partition")
    assert not list(scratch.iterdir())  # the files written are removed
    assert result["environment"]["arrow_cpu_count"] == 1
    assert len(result["environment"]["load_average_at_start"]) == 3
    assert result["table"]["rows"] == 500
    assert {"z_mlp", "z_mlp_err", "z_cnn", "z_cnn_err"} <= set(result["table"]["photoz_columns"])
    assert len(result["writers"]) == 3 and set(result["read"]) == set(result["writers"])
    assert any(name.startswith("RunStore.write_partition") for name in result["writers"])
    for section in ("writers", "read"):
        for row in result[section].values():
            assert row["rows_per_s"] > 0 and row["arrow_mb_per_s"] > 0 and row["file_mb_per_s"] > 0
    assert result["sha256"]["file_mb_per_s"] > 0


@pytest.mark.slow  # a benchmark script end to end (5-25 s); run with -m slow
def test_training_benchmark_runs_on_a_tiny_batch(tmp_path):
    run_script(
        "training.py", "--batch-size", "8", "--repeats", "1", "--train-rows", "100",
        "--out", str(tmp_path),
    )  # fmt: skip
    result = json.loads((tmp_path / "training_cpu.json").read_text())
    assert (tmp_path / "training_cpu.md").read_text().startswith("# Training throughput")
    assert result["machine"]["torch_threads"] == 1
    rows = {row["variant"]: row for row in result["rows"]}
    stamp_networks = ("cnn", "hybrid", "hybrid-transfer")
    assert set(rows) == {"mlp", *stamp_networks, *(f"{k} (paper layout)" for k in stamp_networks)}
    for row in rows.values():
        assert row["samples_per_second"] > 0 and len(row["all_step_s"]) == 1
        expected = 100 * row["copies_per_galaxy"] / row["samples_per_second"]
        assert abs(row["seconds_per_epoch"] - expected) < 1e-9 * expected
    assert rows["mlp"]["copies_per_galaxy"] == 50 and rows["cnn"]["copies_per_galaxy"] == 8
