"""One tile through the batch processor's tile task, in this process: the target for py-spy.

Usage: py-spy record --rate 250 --format raw -o profile.txt -- \
           python benchmarks/profile_tile.py TILE [--out DIR] [--repeats 3]

Runs :func:`csst_photoz.pipeline.tile_task.process_tile` (read, photometry, stamps, inference of
the shipped networks, Parquet write) ``--repeats`` times on one tile store, each into a fresh
run folder, after loading the networks and one warm-up task, with every thread pool pinned to
one thread (a one-core worker). The stage clocks of the last run are printed; the sampling
profiler gives where the time goes inside the stages. ``benchmarks/README.md`` records the findings.
"""

from __future__ import annotations

from _results import pin_threads

pin_threads(1)

import argparse  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from csst_photoz.constants import CSST_BANDS  # noqa: E402
from csst_photoz.io.tile_sources import TileSource  # noqa: E402
from csst_photoz.pipeline import PipelineConfig, resolve_checkpoints  # noqa: E402
from csst_photoz.pipeline.tile_task import TileJob, prepare_worker, process_tile  # noqa: E402


def _warm_up(source: TileSource, job: TileJob) -> None:
    """Networks loaded and one untimed tile task (first imports, caches); its samples are
    told apart by this function's name (``profile_summary.py --without _warm_up``)."""
    prepare_worker(job)
    process_tile(source, job)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tile", type=Path, help="a tile store (zarr)")
    parser.add_argument("--out", type=Path, help="scratch folder (default: a temporary one)")
    parser.add_argument("--repeats", type=int, default=3, help="tile tasks after the warm-up")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    scratch = Path(args.out or tempfile.mkdtemp(prefix="csst-profile-"))
    checkpoints = tuple(resolve_checkpoints(None))
    config = PipelineConfig(device="cpu", torch_threads=1).model_dump_json()
    source = TileSource("zarr", str(args.tile))

    def job(name: str) -> TileJob:
        shutil.rmtree(scratch / name, ignore_errors=True)
        return TileJob(str(scratch / name), config, checkpoints, tuple(CSST_BANDS))

    _warm_up(source, job("warm-up"))
    for k in range(args.repeats):
        result = process_tile(source, job(f"run_{k}"))
    print(f"{result.status}: {result.rows} rows; stage seconds {result.stage_seconds}")
    if args.out is None:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
