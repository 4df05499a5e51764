"""End-to-end throughput of the batch processor, its stage breakdown, scaling and survey cost.

Usage: python benchmarks/pipeline.py [--tiles 4] [--size 2048 | --size 9216x9232] [--workers 1 2]
       [--seed 2022] [--models DIR] [--device cpu|cuda] [--memory-limit auto|20GB]
       [--work runs/bench_pipeline]
       [--out benchmarks/results]

One run: simulate ``--tiles`` tiles (reused from ``--work`` when present), then for each worker
count run :func:`csst_photoz.run` over them on a fresh local cluster into a fresh folder
(shipped checkpoints unless ``--models``), after one untimed warm-up run of one tile. Figures:

* wall time, tiles/hour and galaxies/s per run and per worker; scaling efficiency relative to
  the one-worker run (``rate_n / (n * rate_1)``);
* the stage breakdown from the done-markers (read/decode, photometry, stamps, inference, write;
  photometry's parts: host->device, pixel masks, background, detection, Kron radius + detection
  S/N cut, seven-band apertures, catalogue), and the Dask overhead: the
  share of worker time not spent inside tile tasks, ``1 - sum(task seconds) / (wall * workers)``
  (scheduling, transfer, idle tail);
* peak resident memory of each worker process (``ru_maxrss``), and on CUDA the peak device
  memory of torch and CuPy;
* the survey projection: CSST's 17,500 deg^2 as about 487,000 full 9216 x 9232 tiles and
  1e9 galaxies; hours = tiles x (seconds per tile per worker) / 3600, scaling the measured tile
  by pixel count (stated as an assumption; source density is the same). Beside it, in the same
  run, the CPU core-hours of a sep pipeline (sep background + sep detection + Kron and circular
  photometry, single core, :func:`csst_photoz.photometry.measure_kron_photometry`) plus our CPU
  inference time per galaxy.

Writes ``pipeline_<device>.json`` and ``pipeline_<device>.md`` into ``--out`` (for another tile
size than 2048^2: ``pipeline_<device>_<nx>x<ny>.{json,md}``).
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from _results import write_results  # noqa: E402

import csst_photoz  # noqa: E402
from csst_photoz.constants import CSST_BANDS  # noqa: E402
from csst_photoz.instrument import Instrument  # noqa: E402
from csst_photoz.io import read_tile_zarr  # noqa: E402
from csst_photoz.io.paths import tile_store_path  # noqa: E402
from csst_photoz.io.run_store import RunStore  # noqa: E402
from csst_photoz.pipeline import (  # noqa: E402
    PipelineConfig,
    connect,
    resolve_checkpoints,
    run,
    simulate_tiles,
)
from csst_photoz.pipeline.tile_task import TileJob, prepare_worker  # noqa: E402
from csst_photoz.sim.tiles import tile_grid  # noqa: E402

FULL_TILE_PIXELS = 9216 * 9232
SURVEY_TILES = 487_000
SURVEY_GALAXIES = 1.0e9


def _peak_memory() -> dict:
    """Peak memory of the calling process (run on each worker)."""
    peak = {"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    try:
        import torch

        if torch.cuda.is_available():
            peak["torch_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    except ImportError:
        pass
    try:
        import cupy

        peak["cupy_pool_mb"] = cupy.get_default_memory_pool().total_bytes() / 2**20
    except ImportError:
        pass
    return peak


def _environment(device: str) -> dict:
    import dask
    import torch

    return {
        "device": device,
        "cpu_count": os.cpu_count(),
        "load_average_at_start": list(os.getloadavg()),
        "platform": platform.platform(),
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "dask": dask.__version__,
            "torch": torch.__version__,
            "csst_photoz": csst_photoz.__version__,
        },
    }


def _stage_totals(store: RunStore) -> tuple[dict[str, float], float, int]:
    stages: dict[str, float] = {}
    task_seconds, rows = 0.0, 0
    for record in store.markers():
        task_seconds += record.seconds
        rows += record.rows
        for name, seconds in record.stage_seconds.items():
            stages[name] = stages.get(name, 0.0) + seconds
    return stages, task_seconds, rows


def _timed_run(
    stores: list[Path], out: Path, workers: int, models, config, memory_limit: str
) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    with connect(n_workers=workers, memory_limit=memory_limit) as client:
        run(stores[:1], out / "warmup", models=models, client=client, config=config,
            progress=False)  # fmt: skip
        job = TileJob(str(out), config.model_dump_json(), tuple(resolve_checkpoints(models)),
                      tuple(CSST_BANDS))  # fmt: skip
        client.run(prepare_worker, job)  # every worker: imports and networks loaded
        start = time.perf_counter()
        summary = run(stores, out / "timed", models=models, client=client, config=config,
                      progress=False)  # fmt: skip
        wall = time.perf_counter() - start
        memory = client.run(_peak_memory)
    stages, task_seconds, rows = _stage_totals(RunStore(out / "timed"))
    return {
        "workers": workers,
        "tiles": summary.tiles_done,
        "galaxies": rows,
        "wall_s": wall,
        "tiles_per_hour": 3600 * summary.tiles_done / wall,
        "galaxies_per_s": rows / wall,
        "galaxies_per_s_per_worker": rows / wall / workers,
        "task_seconds": task_seconds,
        "stage_seconds": stages,
        "stage_share": {k: v / task_seconds for k, v in stages.items() if "/" not in k},
        "photometry_part_share": {
            k.split("/", 1)[1]: v / task_seconds for k, v in stages.items() if "/" in k
        },
        "dask_overhead_share": 1.0 - task_seconds / (wall * workers),
        "peak_memory": list(memory.values()),
    }


def _sep_pipeline_seconds(stores: list[Path]) -> tuple[float, int]:
    """Median seconds per tile and total sources of the sep recipe on one core."""
    import sep

    from csst_photoz.photometry import measure_kron_photometry

    seconds, sources = [], 0
    for store in stores:
        tile = read_tile_zarr(store)
        start = time.perf_counter()
        images = []
        for band in range(len(tile.bands)):
            image = np.ascontiguousarray(tile.image[band], dtype=np.float32)
            images.append(image - sep.Background(image).back())
        table = measure_kron_photometry(np.stack(images), tile.variance, bands=tile.bands)
        seconds.append(time.perf_counter() - start)
        sources += len(table)
    return statistics.median(seconds), sources


def measure(args: argparse.Namespace) -> dict:
    work = Path(args.work)
    instrument = Instrument.default()
    nx, ny = args.size
    specs = tile_grid(args.tiles, nx=nx, ny=ny, seed=args.seed,
                      pixel_scale_arcsec=instrument.config.pixel_scale_arcsec)  # fmt: skip
    with connect(n_workers=max(args.workers)) as client:
        simulate_tiles(specs, work / "tiles", client=client, instrument=instrument,
                       progress=False)  # fmt: skip
    stores = [tile_store_path(work / "tiles", spec.tile_id) for spec in specs]
    config = PipelineConfig(device=args.device)
    runs = [
        _timed_run(stores, work / f"run_{n}", n, args.models, config, args.memory_limit)
        for n in args.workers
    ]
    one = next((r for r in runs if r["workers"] == 1), runs[0])
    for entry in runs:
        entry["scaling_efficiency"] = entry["galaxies_per_s"] / (
            entry["workers"] * one["galaxies_per_s"] / one["workers"]
        )
    sep_seconds, sep_sources = _sep_pipeline_seconds(stores)
    scale = FULL_TILE_PIXELS / (nx * ny)
    best = max(runs, key=lambda r: r["galaxies_per_s_per_worker"])
    seconds_per_tile_worker = best["wall_s"] * best["workers"] / best["tiles"]
    inference_per_galaxy = one["stage_seconds"].get("inference", 0.0) / max(one["galaxies"], 1)
    sep_per_galaxy = sep_seconds * args.tiles / max(sep_sources, 1)
    projection = {
        "assumption": f"time scales with pixels: a full tile = {scale:.2f} x a {nx} x {ny} tile",
        "full_tile_seconds_per_worker": seconds_per_tile_worker * scale,
        "full_tiles_per_worker_hour": 3600 / (seconds_per_tile_worker * scale),
        "survey_worker_hours": SURVEY_TILES * seconds_per_tile_worker * scale / 3600,
        "sep_plus_cpu_inference_core_hours": SURVEY_GALAXIES
        * (sep_per_galaxy + inference_per_galaxy)
        / 3600,
        "this_pipeline_core_hours_from_galaxy_rate": SURVEY_GALAXIES
        / best["galaxies_per_s_per_worker"]
        / 3600,
    }
    return {
        "environment": _environment(args.device),
        "tile_size": [nx, ny],
        "tiles": args.tiles,
        "memory_limit_per_worker": args.memory_limit,
        "galaxy_density_per_tile": one["galaxies"] / one["tiles"],
        "runs": runs,
        "sep_pipeline": {"seconds_per_tile": sep_seconds, "sources": sep_sources,
                         "galaxies_per_s": sep_sources / (sep_seconds * args.tiles)},
        "survey_projection": projection,
    }  # fmt: skip


def to_markdown(result: dict) -> str:
    env = result["environment"]
    lines = [
        f"# Batch processor end to end ({env['device']})",
        "",
        f"{result['tiles']} tiles of {result['tile_size'][0]} x {result['tile_size'][1]} px, "
        f"{result['galaxy_density_per_tile']:.0f} detections per tile; load average at start "
        f"{env['load_average_at_start'][0]:.2f}; {env['versions']}",
        "",
        "| workers | wall [s] | tiles/h | galaxies/s | galaxies/s/worker | scaling eff. "
        "| Dask overhead | peak RSS/worker [MB] |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["runs"]:
        rss = max(m["rss_mb"] for m in r["peak_memory"])
        lines.append(
            f"| {r['workers']} | {r['wall_s']:.1f} | {r['tiles_per_hour']:.0f} | "
            f"{r['galaxies_per_s']:.1f} | {r['galaxies_per_s_per_worker']:.1f} | "
            f"{r['scaling_efficiency']:.2f} | {r['dask_overhead_share']:.1%} | {rss:.0f} |"
        )
    lines += ["", "Stage shares of task time:", ""]
    lines.append("| workers | " + " | ".join(result["runs"][0]["stage_share"]) + " |")
    lines.append("| --- |" + " --- |" * len(result["runs"][0]["stage_share"]))
    for r in result["runs"]:
        shares = " | ".join(f"{v:.1%}" for v in r["stage_share"].values())
        lines.append(f"| {r['workers']} | {shares} |")
    parts = result["runs"][0]["photometry_part_share"]
    lines += ["", "Photometry's parts, as shares of task time:", ""]
    lines.append("| workers | " + " | ".join(parts) + " |")
    lines.append("| --- |" + " --- |" * len(parts))
    for r in result["runs"]:
        shares = " | ".join(f"{v:.1%}" for v in r["photometry_part_share"].values())
        lines.append(f"| {r['workers']} | {shares} |")
    sep = result["sep_pipeline"]
    p = result["survey_projection"]
    lines += [
        "",
        f"sep pipeline (one core, same tiles): {sep['seconds_per_tile']:.2f} s per tile, "
        f"{sep['galaxies_per_s']:.0f} sources/s.",
        "",
        f"Survey projection ({p['assumption']}): {p['full_tile_seconds_per_worker']:.0f} s per "
        f"full tile per worker = {p['full_tiles_per_worker_hour']:.1f} full tiles per "
        f"worker-hour; {p['survey_worker_hours']:.3g} worker-hours for 487,000 tiles. "
        f"From the galaxy rate: {p['this_pipeline_core_hours_from_galaxy_rate']:.3g} worker-hours "
        f"per 1e9 galaxies, against {p['sep_plus_cpu_inference_core_hours']:.3g} CPU core-hours "
        "for sep + CPU inference.",
    ]
    return "\n".join(lines) + "\n"


def _tile_size(text: str) -> tuple[int, int]:
    """``"2048"`` -> (2048, 2048); ``"9216x9232"`` -> (9216, 9232)."""
    try:
        sizes = tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        sizes = ()
    if len(sizes) not in (1, 2) or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected N or NXxNY, got {text!r}")
    return (sizes[0], sizes[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiles", type=int, default=4)
    parser.add_argument(
        "--size", type=_tile_size, default=(2048, 2048),
        help="tile size: N (square) or NXxNY, e.g. 9216x9232 (a full CSST detector)",
    )  # fmt: skip
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=2022)
    parser.add_argument("--models", type=Path, help="checkpoints (default: shipped)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--memory-limit", default="auto", help="per worker, e.g. 20GB for full tiles on CPU"
    )
    parser.add_argument("--work", type=Path, default=Path("runs/bench_pipeline"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    result = measure(args)
    stem = f"pipeline_{args.device}"
    if args.size != (2048, 2048):
        stem += f"_{args.size[0]}x{args.size[1]}"
    write_results(args.out, stem, result, to_markdown(result))


if __name__ == "__main__":
    main()
