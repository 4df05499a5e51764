"""End-to-end rate of ``csst_photoz.run`` on this CPU machine for layouts of processes x threads.

Usage: python benchmarks/cpu_layout.py [--tiles 4] [--size 1024] [--rounds 3]
       [--layouts 2x1x1 1x1x2 1x2x1 1x1x1] [--work runs/cpu_layout] [--out benchmarks/results]

A layout ``WxTxP`` is W Dask worker processes with T threads each and P threads for torch and
the BLAS/OpenMP/numexpr pools per worker (``OMP_NUM_THREADS`` & co. in the worker's environment
before it starts, ``PipelineConfig.torch_threads`` for inference). For each round, every layout
in turn (the order rotating from round to round, so that the load of this shared machine falls
on all of them alike): a fresh local cluster (the batch processor's worker malloc settings),
``prepare_worker`` on every worker (networks loaded), an untimed warm-up run of one tile per
worker thread (so that no worker pays its first-call costs in the timed run), then the timed
``run`` over ``--tiles`` tiles of ``--size``^2 (GalSim, the package's simulator, cached in
``--work``) with the shipped networks. Reported per layout: the median galaxies/s and tiles/h
over the rounds with the one-minute load average at the start of each run, galaxies per
CPU-second of the workers (user + system time of the worker processes, all threads: the
layout's efficiency, less sensitive than wall time to other jobs on a shared machine), and full
tiles per
node-hour and per core-hour, scaled from the measured tiles by pixel count (a full tile is
9216 x 9232 px; ``benchmarks/README.md`` found a real full tile 1.6x dearer per pixel than a
2048^2 one, so these are upper bounds).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import dask
from _results import THREAD_VARIABLES, cpu_model, write_results
from distributed import Client, LocalCluster

import csst_photoz
from csst_photoz.io import write_tile_zarr
from csst_photoz.io.paths import tile_store_path
from csst_photoz.pipeline import PipelineConfig, resolve_checkpoints
from csst_photoz.pipeline.cluster import WORKER_MALLOC_ENVIRON
from csst_photoz.pipeline.tile_task import TileJob, prepare_worker
from csst_photoz.sim.tiles import TileSpec, simulate_tile

FULL_TILE_PIXELS = 9216 * 9232
RESULTS = Path(__file__).resolve().parent / "results"


def parse_layout(text: str) -> tuple[int, int, int]:
    """``"2x1x1"`` -> (workers, threads per worker, torch/BLAS threads)."""
    try:
        workers, threads, pool = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"layout {text!r}: expected WxTxP, e.g. 2x1x1") from None
    if min(workers, threads, pool) < 1:
        raise argparse.ArgumentTypeError(f"layout {text!r}: every part must be >= 1")
    return workers, threads, pool


def _tiles(work: Path, n: int, size: int, seed: int) -> list[str]:
    paths = []
    for tile_id in range(n + 1):  # tile 0 only warms up (with tile 1 for two-slot layouts)
        path = tile_store_path(work / "tiles", tile_id)
        if not path.exists():
            tile, _ = simulate_tile(TileSpec(tile_id=tile_id, nx=size, ny=size, seed=seed))
            write_tile_zarr(tile, path)
        paths.append(str(path))
    return paths


def _cpu_seconds() -> float:
    """User + system CPU seconds of the calling process, all its threads (run on each worker)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _run_layout(layout: tuple[int, int, int], tiles: list[str], work: Path) -> dict[str, Any]:
    workers, threads, pool = layout
    environ = {**WORKER_MALLOC_ENVIRON, **dict.fromkeys(THREAD_VARIABLES, str(pool))}
    config = PipelineConfig(device="cpu", torch_threads=pool)
    dasks_own = dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": {**dasks_own, **environ}}):
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=threads, processes=True, host="127.0.0.1",
            dashboard_address=None, memory_limit="auto",
        )  # fmt: skip
    with cluster, Client(cluster) as client:
        job = TileJob("unused", config.model_dump_json(), tuple(resolve_checkpoints(None)),
                      tuple(csst_photoz.constants.CSST_BANDS))  # fmt: skip
        client.run(prepare_worker, job)
        out = work / "runs"
        shutil.rmtree(out, ignore_errors=True)
        # warm every worker thread (first-call costs: imports, allocator, kernels): one tile each
        warm = tiles[: workers * threads]
        csst_photoz.run(warm, out / "warm", client=client, config=config, progress=False)
        load = os.getloadavg()[0]
        cpu_before = sum(client.run(_cpu_seconds).values())
        summary = csst_photoz.run(tiles[1:], out / "timed", client=client, config=config,
                                  progress=False)  # fmt: skip

        cpu_s = sum(client.run(_cpu_seconds).values()) - cpu_before
    if summary.tiles_done != len(tiles) - 1:
        raise RuntimeError(f"layout {layout}: {summary}")
    return {
        "galaxies": summary.galaxies,
        "wall_s": summary.wall_seconds,
        "galaxies_per_s": summary.galaxies_per_second,
        "tiles_per_hour": 3600 * summary.tiles_done / summary.wall_seconds,
        "worker_cpu_s": cpu_s,
        "galaxies_per_cpu_s": summary.galaxies / cpu_s if cpu_s > 0 else 0.0,
        "load_average_1min_at_start": load,
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Every layout in rotating turns for ``args.rounds`` rounds."""
    tiles = _tiles(args.work, args.tiles, args.size, args.seed)
    layouts = [parse_layout(text) for text in args.layouts]
    runs: dict[str, list[dict[str, Any]]] = {text: [] for text in args.layouts}
    for round_ in range(args.rounds):
        shift = round_ % len(layouts)
        for text, layout in (
            list(zip(args.layouts, layouts, strict=True))[shift:]
            + list(zip(args.layouts, layouts, strict=True))[:shift]
        ):
            result = _run_layout(layout, tiles, args.work)
            runs[text].append(result)
            print(f"round {round_} layout {text}: {result['galaxies_per_s']:.0f} galaxies/s "
                  f"(load {result['load_average_1min_at_start']:.1f})", flush=True)  # fmt: skip
    cores = os.cpu_count() or 1
    scale = FULL_TILE_PIXELS / args.size**2
    rows = {}
    for text, results in runs.items():
        tiles_per_hour = statistics.median(r["tiles_per_hour"] for r in results)
        rows[text] = {
            "layout": dict(
                zip(
                    ("workers", "threads_per_worker", "pool_threads"),
                    parse_layout(text),
                    strict=True,
                )
            ),
            "runs": results,
            "median_galaxies_per_s": statistics.median(r["galaxies_per_s"] for r in results),
            "median_galaxies_per_cpu_s": statistics.median(
                r["galaxies_per_cpu_s"] for r in results
            ),
            "median_tiles_per_hour": tiles_per_hour,
            "full_tiles_per_node_hour": tiles_per_hour / scale,
            "full_tiles_per_core_hour": tiles_per_hour / scale / cores,
            "load_averages": [r["load_average_1min_at_start"] for r in results],
        }
    best = max(rows, key=lambda text: rows[text]["median_galaxies_per_s"])
    return {
        "benchmark": "cpu_layout",
        "command": "python benchmarks/cpu_layout.py " + " ".join(sys.argv[1:]),
        "cpu": cpu_model(),
        "cores": cores,
        "tiles": args.tiles,
        "size": args.size,
        "rounds": args.rounds,
        "full_tile_scale": scale,
        "layouts": rows,
        "best": best,
    }


def to_markdown(result: dict[str, Any]) -> str:
    """One row per layout."""
    lines = [
        f"# CPU layouts of `csst_photoz.run` ({result['cores']} cores, {result['cpu']})",
        "",
        f"Command: `{result['command']}`. {result['tiles']} tiles of {result['size']}^2 per run, "
        f"{result['rounds']} rounds in rotating order; full tiles scaled by pixel count "
        f"(x{result['full_tile_scale']:.1f}).",
        "",
        "| layout (workers x threads x torch/BLAS threads) | galaxies/s (median) | per run "
        "| galaxies per worker CPU-second | load avg at start | full tiles / node-hour "
        "| full tiles / core-hour |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for text, row in result["layouts"].items():
        per_run = ", ".join(f"{r['galaxies_per_s']:.0f}" for r in row["runs"])
        loads = ", ".join(f"{x:.1f}" for x in row["load_averages"])
        mark = " **best**" if text == result["best"] else ""
        lines.append(
            f"| {text}{mark} | {row['median_galaxies_per_s']:.0f} | {per_run} "
            f"| {row['median_galaxies_per_cpu_s']:.0f} | {loads} "
            f"| {row['full_tiles_per_node_hour']:.1f} | {row['full_tiles_per_core_hour']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tiles", type=int, default=4)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2022)
    parser.add_argument("--layouts", nargs="+", default=["2x1x1", "1x1x2", "1x2x1", "1x1x1"],
                        type=str)  # fmt: skip
    parser.add_argument("--work", type=Path, default=Path("runs/cpu_layout"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    for text in args.layouts:
        parse_layout(text)
    start = time.perf_counter()
    result = measure(args)
    result["seconds"] = time.perf_counter() - start
    write_results(args.out, "cpu_layout", result, to_markdown(result))


if __name__ == "__main__":
    main()
