"""Stamp simulation is bounded and resumable: a rerun finishes an interrupted set exactly."""

from pathlib import Path

import pytest
from distributed import Client, LocalCluster

from csst_photoz.io.training_set import TrainingDataError
from csst_photoz.pipeline import simulate_stamps, training_stamps
from csst_photoz.sim import PopulationConfig

N, SIZE, SEED = 70, 16, 9  # blocks of 32 rows: [0, 32), [32, 64), [64, 70)


@pytest.fixture(scope="module")
def client():
    """One in-process worker thread: the tests' patches reach the tasks."""
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address="127.0.0.1:0"
        ) as cluster,
        Client(cluster) as dask_client,
    ):
        yield dask_client


def files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_an_interrupted_set_resumes_to_the_files_of_an_uninterrupted_run(
    tmp_path, client, instrument, monkeypatch
):
    render = training_stamps.render_stamps
    rendered: list[int] = []

    def failing_second_block(truth, *, index_offset, **kwargs):
        if index_offset == 32:
            raise OSError("disk full")
        return render(truth, index_offset=index_offset, **kwargs)

    def counting(truth, *, index_offset, **kwargs):
        rendered.append(index_offset)
        return render(truth, index_offset=index_offset, **kwargs)

    common = {"client": client, "seed": SEED, "instrument": instrument, "size": SIZE}
    common |= {"batch_chunks": 1, "progress": False}
    resumed = tmp_path / "resumed"
    monkeypatch.setattr(training_stamps, "render_stamps", failing_second_block)
    with pytest.raises(RuntimeError, match=r"stamps \[32, 64\) failed after 0 retries"):
        simulate_stamps(N, resumed, retries=0, max_in_flight=1, **common)
    assert not (resumed / "stamps.parquet").exists()  # not a training set yet

    monkeypatch.setattr(training_stamps, "render_stamps", counting)
    table = simulate_stamps(N, resumed, **common)
    assert sorted(rendered) == [32, 64]  # the finished block was not rendered again
    assert table["stamp_index"].to_pylist() == list(range(N))

    monkeypatch.setattr(training_stamps, "render_stamps", render)
    simulate_stamps(N, tmp_path / "whole", **common)
    assert files(resumed) == files(tmp_path / "whole")

    rendered.clear()
    monkeypatch.setattr(training_stamps, "render_stamps", counting)
    again = simulate_stamps(N, resumed, **common)  # a finished set: nothing to do
    assert rendered == [] and again.equals(table)


def test_a_folder_of_other_settings_is_refused_unless_overwritten(tmp_path, client, instrument):
    common = {"client": client, "instrument": instrument, "size": SIZE, "progress": False}
    simulate_stamps(8, tmp_path, seed=SEED, **common)
    with pytest.raises(TrainingDataError, match="seed"):
        simulate_stamps(8, tmp_path, seed=SEED + 1, **common)
    with pytest.raises(TrainingDataError, match="n"):
        simulate_stamps(9, tmp_path, seed=SEED, **common)
    with pytest.raises(TrainingDataError, match="population_config"):
        simulate_stamps(
            8, tmp_path, seed=SEED, population_config=PopulationConfig(mag_max=26.0), **common
        )
    table = simulate_stamps(9, tmp_path, seed=SEED, overwrite=True, **common)
    assert table.num_rows == 9
