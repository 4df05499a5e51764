"""The phases of the GPU device check (``benchmarks/gpu_check.py`` runs each in its own process).

Usage: python benchmarks/gpu_check_phases.py PHASE --work DIR [--dry-run] [--tiles N]
       [--set SECTION.KEY=VALUE ...]

Each phase writes ``DIR/<phase>.json`` and prints what it measured. Phases: ``environment``
(device, driver, versions, where each package is imported from), ``tiles`` (fast realistic
full tiles as zarr stores), ``photometry`` (CuPy with its window cap and with the CPU's, against
NumPy per stage, stamps/s), ``inference`` (galaxies/s per network in fp32 and bf16 at batch
4096; on synthetic inputs if the photometry left none), ``pipeline`` (``csst_photoz.run``
through ``connect``: a ``LocalCUDACluster`` with the RMM pool of ``[pipeline.gpu]``). The
settings are the package defaults with the ``--set`` overrides, as ``csst-photoz run --set``
takes them. ``--dry-run`` does the same on the CPU with small sizes.

Tiles: each is a GalSim-rendered patch (the package's own simulator, ``simulate_tile``, default
population, noise and PSFs) mirror-tiled (``numpy.pad(mode="symmetric")``) to the full size.
The source density, profiles, noise and mask statistics are a GalSim tile's, at 1/81 of the
rendering cost for a 1024^2 patch (about 8 core-seconds against 10 core-minutes); every source
appears many times (mirrored), which changes nothing for throughput. Sources cut by a patch
edge become mirror-symmetric pairs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

FULL_SHAPE = (9232, 9216)  # (ny, nx) of a CSST tile
PATCH = 1024
DRY_SHAPE = (320, 288)
DRY_PATCH = 160
INFERENCE_BATCH = 4096
DRY_BATCH = 64
STAMP_ROWS = 4096


# --------------------------------------------------------------------------- helpers


def _xp(dry_run: bool) -> ModuleType:
    if dry_run:
        return np
    import cupy

    return cupy


def _sync(xp: ModuleType) -> None:
    if xp is not np:
        xp.cuda.get_current_stream().synchronize()


class StageClock:
    """Wall seconds per photometry stage, the device synchronised around each."""

    def __init__(self, xp: ModuleType) -> None:
        self.xp = xp
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block as stage ``name`` (summed over repeats of the same name)."""
        _sync(self.xp)
        start = time.perf_counter()
        yield
        _sync(self.xp)
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def _write(work: Path, phase: str, result: dict[str, Any]) -> None:
    (work / f"{phase}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(result, indent=2, default=str))


def _tile_paths(work: Path) -> list[Path]:
    return sorted((work / "tiles").glob("tile_*.zarr"))


def _project(args: argparse.Namespace) -> Any:
    """The package's settings with the ``--set`` overrides (``csst-photoz run --set``)."""
    from csst_photoz.project_config import load_project_config

    return load_project_config(overrides=args.set)


# --------------------------------------------------------------------------- environment


def environment(args: argparse.Namespace) -> dict[str, Any]:
    """Device name, driver, CUDA and library versions, CPU."""
    from importlib.metadata import PackageNotFoundError, version

    result: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_cores": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "versions": {},
    }
    for package in (
        "numpy", "scipy", "torch", "cupy-cuda13x", "cupy-cuda12x", "dask", "distributed",
        "dask-cuda", "rmm-cu13", "zarr", "galsim", "pyarrow", "csst-photoz",
    ):  # fmt: skip
        try:
            result["versions"][package] = version(package)
        except PackageNotFoundError:
            pass
    try:
        query = "name,driver_version,memory.total,clocks.max.sm,pcie.link.gen.max"
        smi = subprocess.run(
            ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True,
        )  # fmt: skip
        fields = smi.stdout.strip().splitlines()[0].split(", ")
        result["nvidia_smi"] = dict(zip(query.split(","), fields, strict=False))
    except (OSError, subprocess.SubprocessError) as error:
        result["nvidia_smi"] = f"not available: {error}"
    result["python_path"] = sys.path[:4]
    result["module_files"] = {}
    for module in ("csst_photoz", "dask", "distributed", "zarr", "galsim", "sep", "astropy",
                   "pydantic", "dask_cuda", "rmm", "cupy", "torch"):  # fmt: skip
        try:
            result["module_files"][module] = __import__(module).__file__
        except Exception as error:  # a report: say what failed (rmm without a GPU, ...)
            result["module_files"][module] = f"not importable: {type(error).__name__}: {error}"
    import torch

    result["torch_cuda"] = torch.version.cuda
    result["cuda_available"] = torch.cuda.is_available()
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        result["device"] = {
            "name": props.name,
            "memory_gib": props.total_memory / 2**30,
            "multiprocessors": props.multi_processor_count,
            "capability": f"{props.major}.{props.minor}",
        }
    if not args.dry_run:
        import cupy

        result["cupy_runtime"] = cupy.cuda.runtime.runtimeGetVersion()
        result["cupy_driver"] = cupy.cuda.runtime.driverGetVersion()
    return result


# --------------------------------------------------------------------------- tiles


def mirrored_tile(tile_id: int, shape: tuple[int, int], patch: int, seed: int) -> Any:
    """A tile of ``shape`` (ny, nx) made of one GalSim-rendered ``patch`` x ``patch`` tile,
    mirror-tiled; its attributes (WCS, zero points, ...) are those of a simulated tile of the
    full size."""
    from csst_photoz.instrument import Instrument
    from csst_photoz.sim.render import RenderSettings
    from csst_photoz.sim.tiles import DetectorEffects, TileSpec, simulate_tile, tile_attributes
    from csst_photoz.tile import Tile

    instrument = Instrument.default()
    small, truth = simulate_tile(
        TileSpec(tile_id=tile_id, nx=patch, ny=patch, seed=seed), instrument=instrument
    )
    ny, nx = shape
    pad = ((0, 0), (0, ny - patch), (0, nx - patch))
    planes = {
        name: np.pad(getattr(small, name), pad, mode="symmetric")
        for name in ("image", "variance", "mask")
    }
    copies = ny * nx / patch**2
    attributes = tile_attributes(
        TileSpec(tile_id=tile_id, nx=nx, ny=ny, seed=seed), instrument=instrument,
        n_galaxies=round(truth.num_rows * copies), render=RenderSettings(),
        effects=DetectorEffects(),
    )  # fmt: skip
    attributes["meta"] = {
        **attributes["meta"],
        "generator": f"GalSim {patch}^2 patch (simulate_tile, seed {seed}) mirror-tiled "
        f"(numpy.pad symmetric) to {ny} x {nx}",
    }
    return Tile(**planes, **attributes)


def _make_tile(work: Path, tile_id: int, shape: tuple[int, int], patch: int) -> dict[str, Any]:
    """Render, mirror and write one tile; it appears in ``work/tiles`` only once complete
    (written under ``tiles/.partial`` and renamed), so a step cut at its timeout leaves
    whole tiles or none."""
    from csst_photoz.io import write_tile_zarr
    from csst_photoz.io.paths import tile_store_path

    start = time.perf_counter()
    tile = mirrored_tile(tile_id, shape, patch, seed=2022 + tile_id)
    made = time.perf_counter()
    partial = tile_store_path(work / "tiles" / ".partial", tile_id)
    write_tile_zarr(tile, partial)
    os.replace(partial, tile_store_path(work / "tiles", tile_id))
    return {
        "tile_id": tile_id,
        "render_and_mirror_s": made - start,
        "write_s": time.perf_counter() - made,
        "galaxies_in_patch_x_copies": tile.meta["n_galaxies"],
    }


def tiles(args: argparse.Namespace) -> dict[str, Any]:
    """Write ``args.tiles`` mirror-tiled tiles into ``work/tiles`` (in parallel processes);
    the result is rewritten as each tile is done, for a step cut at its timeout."""
    shape, patch = (DRY_SHAPE, DRY_PATCH) if args.dry_run else (FULL_SHAPE, PATCH)
    (args.work / "tiles" / ".partial").mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result: dict[str, Any] = {
        "generator": f"GalSim {patch}^2 patch per tile, mirror-tiled to {shape[0]} x {shape[1]} "
        "(benchmarks/gpu_check_phases.py: mirrored_tile)",
        "shape": list(shape),
        "tiles": [],
    }
    workers = max(1, min(args.tiles, os.cpu_count() or 1))
    with ProcessPoolExecutor(workers) as pool:
        futures = [
            pool.submit(_make_tile, args.work, tile_id, shape, patch)
            for tile_id in range(args.tiles)
        ]
        for future in as_completed(futures):
            result["tiles"].append(future.result())
            result["wall_s"] = time.perf_counter() - start
            _write(args.work, "tiles", result)
    return result


# --------------------------------------------------------------------------- photometry


def _crop(tile: Any, ny: int, nx: int) -> Any:
    from dataclasses import replace

    return replace(
        tile,
        image=np.ascontiguousarray(tile.image[:, :ny, :nx]),
        variance=np.ascontiguousarray(tile.variance[:, :ny, :nx]),
        mask=np.ascontiguousarray(tile.mask[:, :ny, :nx]),
    )


def _measure(tile: Any, xp: ModuleType, config: Any = None) -> tuple[Any, dict[str, float], float]:
    """One timed ``measure_tile``; on NumPy of a copy of the tile (made before the clock
    starts): ``measure_tile`` may subtract the background in the caller's float32 stack (a
    view of it counts as its own copy), which would change every later measurement."""
    from dataclasses import replace

    from csst_photoz.photometry import measure_tile

    if xp is np:
        tile = replace(tile, image=tile.image.copy(), variance=tile.variance.copy())
    clock = StageClock(xp)
    _sync(xp)
    start = time.perf_counter()
    result = measure_tile(tile, config=config, xp=xp, stage=clock.stage)
    _sync(xp)
    return result, clock.seconds, time.perf_counter() - start


def _stamps_per_s(result: Any, xp: ModuleType, repeats: int) -> dict[str, Any]:
    n = min(result.table.num_rows, STAMP_ROWS)
    rows = np.arange(n)
    seconds = []
    for _ in range(repeats + 1):  # the first call warms up
        _sync(xp)
        start = time.perf_counter()
        result.stamps(rows)
        _sync(xp)
        seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds[1:])
    return {"stamps": n, "median_s": median, "stamps_per_s": n / median if median else 0.0}


def _agreement(table: Any, other: Any) -> dict[str, Any]:
    """How far two catalogues of one tile differ: rows, and the largest relative difference
    of a float column (NaN where both are NaN counts as equal). Differences are relative to
    the larger of the two values, or to the column's median absolute value if that is larger
    (a flux near 0 that moves by a rounding error is not a large change)."""
    if table.num_rows != other.num_rows or table.column_names != other.column_names:
        return {"same_rows": False, "rows": [table.num_rows, other.num_rows]}
    worst, column = 0.0, None
    for name in table.column_names:
        a, b = table[name].to_numpy(), other[name].to_numpy()
        if a.dtype.kind != "f":
            if not np.array_equal(a, b):
                return {"same_rows": True, "differs": name, "max_rel_diff": float("inf")}
            continue
        both = np.isfinite(a) & np.isfinite(b)
        if not np.array_equal(np.isfinite(a), np.isfinite(b)):
            return {"same_rows": True, "differs": name, "max_rel_diff": float("inf")}
        if both.any():
            typical = float(np.median(np.abs(a[both])))
            scale = np.maximum(np.maximum(np.abs(a[both]), np.abs(b[both])), typical)
            rel = np.abs(a[both] - b[both]) / np.where(scale > 0, scale, 1)
            if float(rel.max()) > worst:
                worst, column = float(rel.max()), name
    return {"same_rows": True, "max_rel_diff": worst, "column": column}


def _save_inference_inputs(work: Path, measured: Any) -> None:
    """The networks' flux columns and a few hundred stamps of a measured tile, for the
    inference phase."""
    table = measured.table
    keep = np.arange(min(table.num_rows, 512))
    stamps, _ = measured.stamps(keep)
    columns = {name: table[name].to_numpy() for name in table.column_names}
    np.savez(
        work / "inference_inputs.npz",
        stamps=np.asarray(stamps.get() if hasattr(stamps, "get") else stamps),
        **{f"col:{k}": v for k, v in columns.items() if v.dtype.kind in "fiu"},
    )


def photometry(args: argparse.Namespace) -> dict[str, Any]:
    """CuPy (or, dry, NumPy) on the full tile; CuPy against NumPy per stage on a quarter tile."""
    from csst_photoz.io import read_tile_zarr

    xp = _xp(args.dry_run)
    paths = _tile_paths(args.work)
    if not paths:
        raise SystemExit(f"{args.work / 'tiles'}: no tiles (the tiles phase did not run)")
    tile = read_tile_zarr(paths[0])
    ny, nx = tile.shape
    config = _project(args).photometry
    on_gpu = xp is not np
    result: dict[str, Any] = {
        "tile": str(paths[0]), "shape": [ny, nx], "device": xp.__name__,
        "max_window_pixels": config.window_pixels(on_gpu),
        "max_window_pixels_key": "max_window_pixels_gpu" if on_gpu else "max_window_pixels",
    }  # fmt: skip
    _, _, whole = _measure(tile, xp, config)  # warm-up: CuPy compiles its kernels here
    result["first_call_s"] = whole
    runs = [_measure(tile, xp, config) for _ in range(2 if not args.dry_run else 1)]
    best = min(runs, key=lambda run: run[2])
    result["full_tile"] = {
        "sources": best[0].table.num_rows,
        "seconds": best[2],
        "all_s": [run[2] for run in runs],
        "stages_s": best[1],
    }
    result["stamps"] = _stamps_per_s(best[0], xp, repeats=3)
    _save_inference_inputs(args.work, best[0])
    _write(args.work, "photometry", result)  # a partial result, should the rest overrun
    # the other backend's window cap on this one: what the backend's own default gains, and
    # that the values agree (the cap only batches the work)
    other_cap = config.max_window_pixels if on_gpu else config.max_window_pixels_gpu
    other = config.model_copy(update={result["max_window_pixels_key"]: other_cap})
    measured, stage_s, seconds = _measure(tile, xp, other)
    result["full_tile_other_window_cap"] = {
        "max_window_pixels": other_cap, "sources": measured.table.num_rows,
        "seconds": seconds, "stages_s": stage_s,
        "agreement": _agreement(best[0].table, measured.table),
    }  # fmt: skip
    _write(args.work, "photometry", result)
    quarter = _crop(tile, ny // 2, nx // 2)
    result["quarter_tile"] = {"shape": [ny // 2, nx // 2], "pixel_share": 0.25}
    for name, module in (("numpy", np), (xp.__name__, xp)):
        measured, stage_s, seconds = _measure(quarter, module, config)
        result["quarter_tile"][name] = {
            "sources": measured.table.num_rows, "seconds": seconds, "stages_s": stage_s,
        }  # fmt: skip
        if module is np:
            result["quarter_tile"]["numpy"]["stamps"] = _stamps_per_s(measured, np, repeats=1)
    cpu, gpu = result["quarter_tile"]["numpy"], result["quarter_tile"][xp.__name__]
    result["quarter_tile"]["same_sources"] = cpu["sources"] == gpu["sources"]
    result["quarter_tile"]["speedup_per_stage"] = {
        stage: cpu["stages_s"][stage] / gpu["stages_s"][stage]
        for stage in cpu["stages_s"]
        if gpu["stages_s"].get(stage, 0) > 0
    }
    return result


# --------------------------------------------------------------------------- inference


def _time(call: Callable[[], Any], repeats: int) -> list[float]:
    call()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return seconds


def _inference_call(
    name: str, model: Any, fluxes: np.ndarray, errors: np.ndarray, stamps: Any, batch: int,
    precision: str,
) -> Callable[[], Any]:  # fmt: skip
    """One batch of one network through ``predict_catalog``, as the tile task calls it."""
    import torch

    from csst_photoz.constants import CSST_BANDS
    from csst_photoz.models.inference import predict_catalog

    def call() -> Any:
        estimates = predict_catalog(
            {name: model}, CSST_BANDS, fluxes, errors, lambda rows: stamps[rows],
            flux_index={name: list(range(fluxes.shape[1]))}, batch_size=batch,
            mixed_precision=precision == "bf16", seed=0,
        )  # fmt: skip
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return estimates

    return call


def _inference_inputs(work: Path, refs: list[Any]) -> tuple[dict[str, np.ndarray], str]:
    """The measured tile's fluxes and stamps, or, if the photometry phase left none (it failed
    or found nothing), synthetic ones of the same shapes: the speed of the networks does not
    depend on the values."""
    path = work / "inference_inputs.npz"
    if path.is_file():
        saved = dict(np.load(path))
        if saved["stamps"].shape[0]:
            return saved, f"measured ({path.name}: {saved['stamps'].shape[0]} sources)"
    from csst_photoz.constants import CSST_BANDS
    from csst_photoz.photometry import PhotometryConfig

    rng = np.random.default_rng(0)
    n, size = 512, PhotometryConfig().stamp_size
    synthetic = {"stamps": rng.normal(0.0, 1.0, (n, len(CSST_BANDS), size, size))}
    for ref in refs:
        for flux, error in zip(ref.flux_columns, ref.error_columns, strict=False):
            synthetic[f"col:{flux}"] = rng.lognormal(7.0, 1.0, n)
            synthetic[f"col:{error}"] = 0.1 * synthetic[f"col:{flux}"]
    synthetic["stamps"] = synthetic["stamps"].astype(np.float32)
    return synthetic, f"synthetic ({path.name} missing or empty: the photometry step failed)"


def inference(args: argparse.Namespace) -> dict[str, Any]:
    """Galaxies/s of each shipped network through ``predict_catalog`` in fp32 and bf16."""
    from csst_photoz.models import load_model
    from csst_photoz.pipeline import resolve_checkpoints

    device = "cpu" if args.dry_run else "cuda"
    xp = _xp(args.dry_run)
    batch = DRY_BATCH if args.dry_run else INFERENCE_BATCH
    refs = resolve_checkpoints(None)
    saved, inputs = _inference_inputs(args.work, refs)
    n = saved["stamps"].shape[0]
    index = np.resize(np.arange(n), batch)
    stamps = xp.asarray(saved["stamps"][index])
    result: dict[str, Any] = {"device": device, "batch": batch, "inputs": inputs, "networks": {}}
    for ref in refs:
        model = load_model(ref.path, map_location=device)
        fluxes = np.stack([saved[f"col:{c}"][index] for c in ref.flux_columns], axis=1) if (
            ref.flux_columns) else np.zeros((batch, 0))  # fmt: skip
        errors = np.stack([saved[f"col:{c}"][index] for c in ref.error_columns], axis=1) if (
            ref.error_columns) else np.zeros((batch, 0))  # fmt: skip
        timings: dict[str, Any] = {}
        for precision in ("fp32", "bf16"):
            call = _inference_call(ref.name, model, fluxes, errors, stamps, batch, precision)
            median = statistics.median(_time(call, repeats=3 if args.dry_run else 5))
            timings[precision] = {"median_s": median, "galaxies_per_s": batch / median}
        result["networks"][ref.name] = {"variant": ref.variant, **timings}
    return result


# --------------------------------------------------------------------------- pipeline


def _pool_report() -> dict[str, str]:
    """Run on a worker: which allocators CuPy and torch use (RMM's when the pool is shared)."""
    report: dict[str, str] = {}
    try:
        import cupy

        allocator = cupy.cuda.get_allocator()
        report["cupy_allocator"] = f"{getattr(allocator, '__module__', '')}." + getattr(
            allocator, "__qualname__", type(allocator).__name__
        )
    except Exception as error:  # a report, not a check: say what failed
        report["cupy_allocator"] = f"unknown ({error})"
    try:
        import rmm

        report["rmm_resource"] = type(rmm.mr.get_current_device_resource()).__name__
    except Exception as error:
        report["rmm_resource"] = f"unknown ({error})"
    try:
        import torch

        report["torch_allocator"] = torch.cuda.memory.get_allocator_backend()
    except Exception as error:
        report["torch_allocator"] = f"unknown ({error})"
    return report


def pipeline(args: argparse.Namespace) -> dict[str, Any]:
    """``csst_photoz.run`` over the tiles on one GPU worker (dry: one CPU worker), on the
    cluster :func:`~csst_photoz.pipeline.cluster.connect` starts with the ``[pipeline.gpu]``
    pool, as ``csst-photoz run`` does."""
    from csst_photoz.constants import CSST_BANDS
    from csst_photoz.pipeline import resolve_checkpoints, run
    from csst_photoz.pipeline.cluster import connect
    from csst_photoz.pipeline.tile_task import TileJob, prepare_worker

    paths = [str(p) for p in _tile_paths(args.work)]
    if not paths:
        raise SystemExit(f"{args.work / 'tiles'}: no tiles (the tiles phase did not run)")
    device = "cpu" if args.dry_run else "cuda"
    config = _project(args).pipeline.model_copy(update={"device": device})
    pool = config.gpu
    result: dict[str, Any] = {
        "device": device, "tiles": len(paths), "gpu_pool": pool.model_dump(),
        "gpu_pool_cluster_kwargs": pool.cluster_kwargs(),
        "max_window_pixels": config.photometry.window_pixels(not args.dry_run),
    }  # fmt: skip
    with connect(n_workers=1, threads_per_worker=1, gpu_memory=pool) as client:
        cluster = type(client.cluster).__name__
        result["cluster"] = f"{cluster}(n_workers=1) from connect()"
        if not args.dry_run and cluster != "LocalCUDACluster":
            result["warning"] = "connect() did not start a LocalCUDACluster: no dask-cuda or GPU"
        refs = resolve_checkpoints(None)
        job = TileJob("unused", config.model_dump_json(), tuple(refs), tuple(CSST_BANDS))
        start = time.perf_counter()
        result["worker_device"] = list(client.run(prepare_worker, job).values())
        result["prepare_worker_s"] = time.perf_counter() - start
        result["pool"] = list(client.run(_pool_report).values())
        warm = run(paths[:1], args.work / "run_warm", client=client, config=config,
                   progress=False)  # fmt: skip
        result["warm_up_tile_s"] = warm.wall_seconds
        _write(args.work, "pipeline", result)  # a partial result, should the run overrun
        summary = run(paths, args.work / "run", client=client, config=config, progress=False)
    stages = {k: v for k, v in summary.stage_seconds.items() if "/" not in k}
    task_s = sum(stages.values())
    result.update(
        tiles_done=summary.tiles_done,
        tiles_failed=summary.tiles_failed,
        failures=[f.reason for f in summary.failures],
        galaxies=summary.galaxies,
        wall_s=summary.wall_seconds,
        galaxies_per_s=summary.galaxies_per_second,
        tiles_per_hour=3600 * summary.tiles_done / summary.wall_seconds
        if summary.wall_seconds
        else 0.0,
        stage_seconds=summary.stage_seconds,
        stage_shares={k: v / task_s for k, v in stages.items()} if task_s else {},
    )
    return result


PHASES: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "environment": environment,
    "tiles": tiles,
    "photometry": photometry,
    "inference": inference,
    "pipeline": pipeline,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("phase", choices=sorted(PHASES))
    parser.add_argument("--work", type=Path, required=True, help="scratch folder")
    parser.add_argument("--dry-run", action="store_true", help="CPU, small sizes")
    parser.add_argument("--tiles", type=int, default=3, help="tiles to make / run")
    parser.add_argument(
        "--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
        help="configuration override (as csst-photoz run --set; repeatable)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result = PHASES[args.phase](args)
    result["phase_s"] = time.perf_counter() - start
    _write(args.work, args.phase, result)


if __name__ == "__main__":
    sys.exit(main())
