"""Photometry throughput on a simulated tile: ours (NumPy or CuPy) beside sep and photutils.

Usage: python benchmarks/photometry.py [--size 2048] [--repeats 3] [--device cpu|gpu]
       [--seed 2022] [--photutils-sources 200] [--stamp-batch 1024] [--small-size 256]
       [--out benchmarks/results]

One run, one simulated tile (GalSim galaxies + noise, never an empty image), three measurements,
each the median over ``--repeats`` timed calls after one untimed warm-up call:

(a) **aperture photometry only**, same image, positions and apertures for every implementation:
    the sources and Kron apertures of sep's detection of the tile (the reference recipe,
    :func:`csst_photoz.photometry.measure_kron_photometry`: ``max(k_R, 1.75 px / sqrt(ab))``
    x (a, b)) plus the configured circular apertures (0.3", 0.5", 1.0"), in all seven bands,
    with errors from the variance plane:

    * ours: one :func:`~csst_photoz.photometry.apertures.sum_ellipses` call (exact overlaps);
    * sep: ``sum_ellipse`` + three ``sum_circle`` per band, ``subpix=5`` (sep's default) and
      ``subpix=0`` (exact overlap);
    * photutils 'exact': ``aperture_photometry`` (the public, table-building API; one call per
      source and band for the ellipses, whose shapes must be scalars; run on the first
      ``--photutils-sources`` sources only, as it is slow) and the same apertures through
      ``Aperture.do_photometry`` (no table; all sources).

    Rates: apertures/s (one aperture in one band = 1) and galaxies/s (4 apertures x 7 bands).
(b) **full measurement of the tile**: :func:`~csst_photoz.photometry.tile_photometry.measure_tile`
    (background, detection, Kron radius, apertures, Arrow catalogue) beside the sep pipeline
    (``sep.Background`` per band, then ``measure_kron_photometry``: ``sep.extract``, Kron radius,
    ``sum_ellipse`` in 7 bands + detection image, then ``sum_circle`` in 7 bands); our stages
    are timed one by one by calling the kernels separately with the previous stage's output.
    The whole-tile pipelines are timed in turns (ours, ours on device arrays, sep; repeated),
    so that a drifting machine weighs on them alike. Each pipeline's sources/s counts its own
    detections; compare the tile times.
(c) **stamps**: :meth:`TilePhotometry.stamps` (7 x 64 x 64 cut-outs) for up to
    ``--stamp-batch`` sources per call.
(d) **a small image** (``--small-size``, default 256 x 256): the whole measurement, ours beside
    sep's pipeline (interleaved, at least 9 repeats), with our stage breakdown and sep's: the
    fixed costs per call, which dominate there.

Threads: sep is single-threaded, so the comparison is one core against one core: the
OpenMP/BLAS thread pools are pinned to one thread *before* NumPy is imported (the values are
recorded in the JSON). GPU timings (``--device gpu``, needs CuPy and a CUDA device) synchronise
the device before and after every timed call; sep and photutils always run on the CPU.

Writes ``photometry_<device>.json`` and ``photometry_<device>.md`` into ``--out``.
"""

from __future__ import annotations

import os

from _results import (
    MALLOC_VARIABLES,
    THREAD_VARIABLES,
    array_module_for,
    cpu_model,
    interleaved_median_times,
    median_time,
    pin_threads,
    synchroniser,
    write_results,
)

# one thread for every numerical library, before anything imports NumPy (sep is single-threaded)
pin_threads(1)

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from types import ModuleType  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import photutils  # noqa: E402
import sep  # noqa: E402
from photutils.aperture import (  # noqa: E402
    CircularAperture,
    EllipticalAperture,
    aperture_photometry,
)

import csst_photoz  # noqa: E402
from csst_photoz.photometry import measure as measure_module  # noqa: E402
from csst_photoz.photometry import measure_kron_photometry  # noqa: E402
from csst_photoz.photometry.apertures import sum_ellipses  # noqa: E402
from csst_photoz.photometry.catalog import photometry_table  # noqa: E402
from csst_photoz.photometry.measure import (  # noqa: E402
    PhotometryConfig,
    measure_sources,
)
from csst_photoz.photometry.tile_photometry import measure_tile  # noqa: E402
from csst_photoz.sim.tiles import TileSpec, simulate_tile  # noqa: E402
from csst_photoz.tile import Tile  # noqa: E402

RESULTS = Path(__file__).parent / "results"
FULL_TILE = (9216, 9232)
#: sep's pixel stack as a fresh process has it: `measure_kron_photometry` raises it to the
#: largest image it has seen, and sep allocates it on every extract call (a 2048^2 one made sep
#: 10x slower on the small image that followed)
SEP_PIXSTACK_AT_START = sep.get_extract_pixstack()


# --------------------------------------------------------------------------- machinery


def _environment(xp: ModuleType, device: str) -> dict:
    import galsim
    import scipy

    versions = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "sep": sep.__version__,
        "photutils": photutils.__version__,
        "galsim": galsim.__version__,
        "csst_photoz": csst_photoz.__version__,
    }
    environment = {
        "device": device,
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "threads": {name: os.environ.get(name) for name in THREAD_VARIABLES},
        "malloc": {name: os.environ.get(name) for name in MALLOC_VARIABLES},
        "load_average_at_start": list(os.getloadavg()),
        "versions": versions,
    }
    try:
        from threadpoolctl import threadpool_info

        environment["threadpools"] = [
            {key: pool.get(key) for key in ("user_api", "internal_api", "num_threads")}
            for pool in threadpool_info()
        ]
    except ImportError:
        pass
    if xp is not np:
        versions["cupy"] = xp.__version__
        properties = xp.cuda.runtime.getDeviceProperties(xp.cuda.Device().id)
        environment["gpu"] = properties["name"].decode()
    return environment


# --------------------------------------------------------------------------- (a) apertures


def _reference_apertures(tile: Tile, config: PhotometryConfig) -> dict[str, np.ndarray]:
    """Positions and Kron apertures of sep's detection of the tile (the reference recipe)."""
    table = measure_kron_photometry(
        tile.image, tile.variance, bands=tile.bands, detection_bands=config.detection_bands,
        kron_factor=config.kron_factor, threshold_sigma=config.threshold_sigma,
        min_area=config.min_area, deblend_cont=config.deblend_cont,
        min_radius_pix=config.min_radius_pix,
    )  # fmt: skip
    a, b = np.asarray(table["a"], dtype=np.float64), np.asarray(table["b"], dtype=np.float64)
    kron = np.nan_to_num(np.asarray(table["kron_radius"], dtype=np.float64))
    scale = np.maximum(config.kron_factor * kron, config.min_radius_pix / np.sqrt(a * b))
    return {
        "x": np.asarray(table["x"], dtype=np.float64),
        "y": np.asarray(table["y"], dtype=np.float64),
        "a": a,
        "b": b,
        "theta": np.asarray(table["theta"], dtype=np.float64),
        "scale": scale,
    }


def _aperture_runners(
    images: np.ndarray,
    variances: np.ndarray,
    apertures: dict[str, np.ndarray],
    radii_pix: tuple[float, ...],
    xp: ModuleType,
    photutils_sources: int,
) -> dict[str, tuple[Callable[[], Any], int]]:
    """Each implementation's seven-band aperture photometry and how many sources it measures."""
    x, y, a, b, theta, scale = (apertures[k] for k in ("x", "y", "a", "b", "theta", "scale"))
    n = x.size
    n_bands = images.shape[0]
    ones = np.ones(n)
    semi_a = np.stack([scale * a] + [r * ones for r in radii_pix])
    semi_b = np.stack([scale * b] + [r * ones for r in radii_pix])
    angle = np.stack([theta] + [0.0 * ones for _ in radii_pix])
    device = {
        "images": xp.asarray(images),
        "variances": xp.asarray(variances),
        **{name: xp.asarray(v) for name, v in (("x", x), ("y", y), ("a", semi_a))},
        **{name: xp.asarray(v) for name, v in (("b", semi_b), ("theta", angle))},
    }
    errors = np.sqrt(variances)

    def ours() -> Any:
        return sum_ellipses(
            device["images"], device["variances"], device["x"], device["y"], device["a"],
            device["b"], device["theta"],
        ).flux  # fmt: skip

    def sep_bands(subpix: int) -> Callable[[], list]:
        def run() -> list:
            out = []
            for k in range(n_bands):
                out.append(
                    sep.sum_ellipse(images[k], x, y, a, b, theta, scale, var=variances[k],
                                    subpix=subpix)
                )  # fmt: skip
                out.extend(
                    sep.sum_circle(images[k], x, y, r, var=variances[k], subpix=subpix)
                    for r in radii_pix
                )
            return out

        return run

    m = min(n, photutils_sources)
    positions = np.column_stack([x, y])

    def photutils_table() -> list:
        out = []
        circles = [CircularAperture(positions[:m], r=r) for r in radii_pix]
        for k in range(n_bands):
            out.append(aperture_photometry(images[k], circles, error=errors[k], method="exact"))
            for i in range(m):
                ellipse = EllipticalAperture(
                    positions[i], a=scale[i] * a[i], b=scale[i] * b[i], theta=theta[i]
                )
                out.append(aperture_photometry(images[k], ellipse, error=errors[k], method="exact"))
        return out

    def photutils_kernel() -> list:
        out = []
        circles = [CircularAperture(positions, r=r) for r in radii_pix]
        ellipses = [
            EllipticalAperture(positions[i], a=scale[i] * a[i], b=scale[i] * b[i], theta=theta[i])
            for i in range(n)
        ]
        for k in range(n_bands):
            for aperture in (*circles, *ellipses):
                out.append(aperture.do_photometry(images[k], error=errors[k], method="exact"))
        return out

    return {
        "ours sum_ellipses (exact)": (ours, n),
        "sep subpix=5 (default)": (sep_bands(5), n),
        "sep subpix=0 (exact)": (sep_bands(0), n),
        f"photutils aperture_photometry exact ({m} sources)": (photutils_table, m),
        "photutils do_photometry exact": (photutils_kernel, n),
    }


def _agreement(images, variances, apertures, radii_pix, xp) -> dict[str, float]:
    """Largest |ours - sep exact| over the aperture noise and relative, Kron and circles."""
    x, y, a, b, theta, scale = (apertures[k] for k in ("x", "y", "a", "b", "theta", "scale"))
    if x.size == 0:
        return {}
    ones = np.ones(x.size)
    semi_a = np.stack([scale * a] + [r * ones for r in radii_pix])
    semi_b = np.stack([scale * b] + [r * ones for r in radii_pix])
    angle = np.stack([theta] + [0.0 * ones for _ in radii_pix])
    sums = sum_ellipses(
        xp.asarray(images), xp.asarray(variances), xp.asarray(x), xp.asarray(y),
        xp.asarray(semi_a), xp.asarray(semi_b), xp.asarray(angle),
    )  # fmt: skip
    flux = np.asarray(sums.flux.get() if xp is not np else sums.flux)
    worst_noise, worst_relative = 0.0, 0.0
    for k in range(images.shape[0]):
        ref = [sep.sum_ellipse(images[k], x, y, a, b, theta, scale, var=variances[k], subpix=0)]
        ref += [sep.sum_circle(images[k], x, y, r, var=variances[k], subpix=0) for r in radii_pix]
        for j, (ref_flux, ref_err, _) in enumerate(ref):
            difference = np.abs(flux[j, k] - ref_flux)
            worst_noise = max(worst_noise, float(np.max(difference / ref_err)))
            worst_relative = max(
                worst_relative, float(np.max(difference / np.maximum(np.abs(ref_flux), ref_err)))
            )
    return {"max_abs_diff_over_noise": worst_noise, "max_rel_diff": worst_relative}


# --------------------------------------------------------------------------- (b) full tile


def _sep_pipeline(
    tile: Tile, config: PhotometryConfig, radii_pix: tuple[float, ...]
) -> dict[str, Callable[[], Any]]:
    images, variances = tile.image, tile.variance
    subtracted = np.empty_like(images)
    state: dict[str, Any] = {}

    def background() -> None:
        for k in range(images.shape[0]):
            np.copyto(subtracted[k], images[k])
            sep.Background(
                images[k], bw=config.background_box, bh=config.background_box,
                fw=config.background_filter, fh=config.background_filter,
            ).subfrom(subtracted[k])  # fmt: skip

    def kron() -> None:
        state["table"] = measure_kron_photometry(
            subtracted, variances, bands=tile.bands, detection_bands=config.detection_bands,
            kron_factor=config.kron_factor, threshold_sigma=config.threshold_sigma,
            min_area=config.min_area, deblend_cont=config.deblend_cont,
            min_radius_pix=config.min_radius_pix,
        )  # fmt: skip

    def circles() -> None:
        table = state["table"]
        x, y = np.asarray(table["x"], dtype=np.float64), np.asarray(table["y"], dtype=np.float64)
        for k in range(images.shape[0]):
            for r in radii_pix:
                sep.sum_circle(subtracted[k], x, y, r, var=variances[k], subpix=5)

    def whole() -> None:
        background()
        kron()
        circles()

    background()
    kron()
    return {
        "whole": whole,
        "background (sep.Background x 7)": background,
        "detection + Kron + ellipses (measure_kron_photometry)": kron,
        "circular apertures (sep.sum_circle)": circles,
        "_table": lambda: state["table"],
    }


#: The count of detections that reach the Kron and detection-S/N stages.
RAW = "raw detections (before the detection S/N cut)"

#: The kernels that :func:`measure_sources` calls, by the name it imports them under.
_KERNELS = ("estimate_background", "detect_sources", "kron_radius", "sum_ellipses")


def _stage_name(kernel: str, args: tuple) -> str:
    if kernel == "sum_ellipses":  # a 2-D image is the detection image (its S/N), else 7 bands
        n_bands = 1 if args[0].ndim == 2 else args[0].shape[0]
        return f"sum_ellipses: {'detection image (S/N)' if n_bands == 1 else f'{n_bands} bands'}"
    return {
        "estimate_background": "estimate_background (7 bands)",
        "detect_sources": "detect_sources (g+r+i+z stack)",
        "kron_radius": "kron_radius",
    }[kernel]


def _our_stages(
    tile: Tile, config: PhotometryConfig, xp: ModuleType, repeats: int, sync: Callable
) -> tuple[dict[str, float], dict[str, int]]:
    """Median time of each kernel inside :func:`measure_sources`, and of the catalogue.

    The kernels are wrapped (timed, device synchronised) where ``measure_sources`` looks them
    up, so the breakdown follows whatever the chain does (e.g. which sources reach the 7-band
    apertures); ``other`` is the rest of ``measure_sources`` (masking, glue, host syncs).
    """
    planes = tuple(xp.asarray(p) for p in (tile.image, tile.variance, tile.mask))
    original = {name: getattr(measure_module, name) for name in _KERNELS}
    spent: dict[str, float] = {}
    counts: dict[str, int] = {}

    def wrap(name: str) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            sync()
            start = time.perf_counter()
            out = original[name](*args, **kwargs)
            sync()
            stage = _stage_name(name, args)
            spent[stage] = spent.get(stage, 0.0) + time.perf_counter() - start
            if name == "detect_sources":
                counts[RAW] = len(out)
            return out

        return timed

    def run() -> Any:
        return measure_sources(
            *planes[:2], bands=tile.bands, pixel_scale_arcsec=tile.pixel_scale_arcsec,
            mask=planes[2], config=config,
        )  # fmt: skip

    samples: list[dict[str, float]] = []
    try:
        for name in _KERNELS:
            setattr(measure_module, name, wrap(name))
        for repeat in range(repeats + 1):  # the first is the warm-up
            spent.clear()
            sync()
            start = time.perf_counter()
            measurements = run()
            sync()
            total = time.perf_counter() - start
            if repeat:
                samples.append({**spent, "other (masking, glue)": total - sum(spent.values())})
    finally:
        for name, function in original.items():
            setattr(measure_module, name, function)
    stages = {name: statistics.median(s.get(name, 0.0) for s in samples) for name in samples[0]}
    stages["photometry_table (to host, Arrow)"] = median_time(
        lambda: photometry_table(measurements, tile, config), repeats, sync
    )["median_s"]
    return stages, counts


def _small_image(
    size: int, seed: int, config: PhotometryConfig, xp: ModuleType, repeats: int, sync: Callable
) -> dict[str, Any]:
    """(d) The whole measurement of a small tile, ours beside sep's, and where our time goes.

    On a small image the fixed costs per call (Python glue, one kernel launch or batch per
    stage, host syncs) weigh most; this row shows them.
    """
    tile, truth = simulate_tile(TileSpec(tile_id=0, nx=size, ny=size, seed=seed))
    radii_pix = tuple(r / tile.pixel_scale_arcsec for r in config.circular_radii_arcsec)
    sep.set_extract_pixstack(SEP_PIXSTACK_AT_START)  # as sep would run on this image alone
    sep_runs = _sep_pipeline(tile, config, radii_pix)
    n_sep = len(sep_runs.pop("_table")())
    n_ours = measure_tile(tile, config=config, xp=xp).table.num_rows
    repeats = max(repeats, 9)  # small and noisy: more samples
    whole = interleaved_median_times(
        {
            "ours": (lambda: measure_tile(tile, config=config, xp=xp), sync),
            "sep": (sep_runs.pop("whole"), lambda: None),
        },
        repeats,
    )
    stages, counts = _our_stages(tile, config, xp, repeats, sync)
    return {
        "size": size,
        "truth_galaxies": truth.num_rows,
        "sources": {"ours": n_ours, "sep": n_sep},
        "our_counts": counts,
        "ours_s": whole["ours"]["median_s"],
        "sep_s": whole["sep"]["median_s"],
        "time_vs_sep": whole["ours"]["median_s"] / whole["sep"]["median_s"],
        "our_stages_s": stages,
        "sep_stages_s": {
            name: median_time(stage, repeats, lambda: None)["median_s"]
            for name, stage in sep_runs.items()
        },
    }


# --------------------------------------------------------------------------- report


def _rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("nan")


def _markdown(result: dict) -> str:
    env, tile = result["environment"], result["tile"]
    device = env.get("gpu", env["cpu_model"])
    lines = [
        f"# Photometry throughput, {tile['size']} x {tile['size']} px x 7 bands, "
        f"device: {env['device']}",
        "",
        f"{device}; {env['cpu_count']} CPU cores, {result['threads_note']}; "
        + "; ".join(f"{k} {v}" for k, v in env["versions"].items()),
        "",
        f"Tile: seed {tile['seed']}, {tile['truth_galaxies']} simulated galaxies "
        f"({tile['galaxies_per_arcmin2']:.0f} / arcmin^2, "
        f"{tile['area_arcmin2']:.2f} arcmin^2); medians of {result['repeats']} after a warm-up. "
        f"Load average at start {env['load_average_at_start'][0]:.2f}, "
        f"at end {result['load_average_at_end'][0]:.2f}.",
        "",
        f"## (a) Aperture photometry only: {result['apertures']['sources']} sources (sep "
        "detection) x 7 bands x (1 Kron ellipse + 3 circles)",
        "",
        "| implementation | sources | time [ms] | apertures/s | galaxies/s (7 bands) "
        "| vs sep subpix=5 | vs sep exact |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in result["apertures"]["implementations"].items():
        lines.append(
            f"| {name} | {row['sources']} | {1e3 * row['median_s']:.1f} "
            f"| {row['apertures_per_s']:,.0f} | {row['galaxies_per_s']:,.0f} "
            f"| {row['speed_vs_sep_default']:.2f}x | {row['speed_vs_sep_exact']:.2f}x |"
        )
    agreement = result["apertures"]["agreement_with_sep_exact"]
    if agreement:
        lines += [
            "",
            f"Ours vs sep subpix=0 on these apertures: max |diff| = "
            f"{agreement['max_abs_diff_over_noise']:.1e} x the aperture noise, "
            f"max relative diff {agreement['max_rel_diff']:.1e}.",
        ]
    full = result["full_tile"]
    lines += [
        "",
        "## (b) Full measurement of the tile (background, detection, Kron, apertures)",
        "",
        "| pipeline | sources detected | tile time [s] | sources/s | tile time vs sep |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, row in full["pipelines"].items():
        lines.append(
            f"| {name} | {row['sources']} | {row['median_s']:.3f} "
            f"| {row['sources_per_s']:,.0f} | {row['time_vs_sep']:.2f}x |"
        )
    lines += [
        "",
        f"Our stages ({', '.join(f'{k}: {v}' for k, v in full['our_counts'].items())}):",
        "",
        "| our stage | time [ms] | share |",
        "| --- | --- | --- |",
    ]
    total = sum(full["our_stages_s"].values())
    for name, seconds in full["our_stages_s"].items():
        lines.append(f"| {name} | {1e3 * seconds:.1f} | {seconds / total:.0%} |")
    lines += [
        f"| sum of the rows (measure_sources alone: {1e3 * full['measure_sources_s']:.1f} ms) "
        f"| {1e3 * total:.1f} | |",
        "",
        "| sep stage | time [ms] |",
        "| --- | --- |",
    ]
    lines += [f"| {k} | {1e3 * v:.1f} |" for k, v in full["sep_stages_s"].items()]
    stamps = result["stamps"]
    lines += [
        "",
        f"## (c) Stamps: {stamps['per_call']} x 7 x {stamps['size']} x {stamps['size']} per call",
        "",
        f"{1e3 * stamps['median_s']:.1f} ms per call, {stamps['stamps_per_s']:,.0f} stamps/s.",
        "",
        f"Projected to a full {FULL_TILE[0]} x {FULL_TILE[1]} detector at this density, one "
        f"core: ours {result['projected_full_tile_s']['ours']:.0f} s, sep pipeline "
        f"{result['projected_full_tile_s']['sep']:.0f} s (linear in area).",
    ]
    small = result.get("small_image")
    if small:
        lines += [
            "",
            f"## (d) Small image: {small['size']} x {small['size']} px x 7 bands "
            f"({small['truth_galaxies']} simulated galaxies)",
            "",
            f"ours (measure_tile) {1e3 * small['ours_s']:.1f} ms, {small['sources']['ours']} "
            f"sources; sep pipeline {1e3 * small['sep_s']:.1f} ms, {small['sources']['sep']} "
            f"sources: **{small['time_vs_sep']:.2f}x sep's time**. Where the time goes "
            "(our Kron radii and detection S/N are measured on every raw detection, "
            f"{small['our_counts'].get(RAW, '?')} here, before the S/N cut; sep's on its "
            f"{small['sources']['sep']} detections after its CLEAN):",
            "",
            "| our stage | time [ms] | | sep stage | time [ms] |",
            "| --- | --- | --- | --- | --- |",
        ]
        ours_rows = list(small["our_stages_s"].items())
        sep_rows = list(small["sep_stages_s"].items())
        for k in range(max(len(ours_rows), len(sep_rows))):
            left = (
                f"{ours_rows[k][0]} | {1e3 * ours_rows[k][1]:.1f}" if k < len(ours_rows) else " | "
            )
            right = f"{sep_rows[k][0]} | {1e3 * sep_rows[k][1]:.1f}" if k < len(sep_rows) else " | "
            lines.append(f"| {left} | | {right} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="tile side [pixels]")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per measurement")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--seed", type=int, default=2022, help="simulation seed")
    parser.add_argument(
        "--photutils-sources", type=int, default=200,
        help="sources measured by photutils' (slow) aperture_photometry",
    )  # fmt: skip
    parser.add_argument("--stamp-batch", type=int, default=1024, help="stamps per call")
    parser.add_argument(
        "--small-size", type=int, default=256, help="side of the small-image row (0: none)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="output folder")
    args = parser.parse_args(argv)
    if args.size < 64 or args.repeats < 1 or args.photutils_sources < 1 or args.stamp_batch < 1:
        parser.error("need --size >= 64 and positive --repeats, --photutils-sources, --stamp-batch")

    xp = array_module_for(args.device)
    sync = synchroniser(xp)
    environment = _environment(xp, args.device)
    warnings.filterwarnings("ignore", module="photutils")

    start = time.perf_counter()
    tile, truth = simulate_tile(TileSpec(tile_id=0, nx=args.size, ny=args.size, seed=args.seed))
    simulate_s = time.perf_counter() - start
    config = PhotometryConfig()
    radii_pix = tuple(r / tile.pixel_scale_arcsec for r in config.circular_radii_arcsec)
    area_arcmin2 = args.size**2 * (tile.pixel_scale_arcsec / 60.0) ** 2
    print(f"simulated {args.size}^2 tile with {truth.num_rows} galaxies in {simulate_s:.1f} s")

    # (a) apertures only
    reference = _reference_apertures(tile, config)
    n_ref = int(reference["x"].size)
    apertures_per_source = 1 + len(radii_pix)
    rows = {}
    for name, (function, n) in _aperture_runners(
        tile.image, tile.variance, reference, radii_pix, xp, args.photutils_sources
    ).items():
        timing = median_time(
            function, args.repeats, sync if name.startswith("ours") else lambda: None
        )
        rows[name] = {
            "sources": n,
            **timing,
            "apertures_per_s": _rate(
                n * apertures_per_source * len(tile.bands), timing["median_s"]
            ),
            "galaxies_per_s": _rate(n, timing["median_s"]),
        }
        print(f"(a) {name}: {1e3 * timing['median_s']:.1f} ms")
    for row in rows.values():
        for key, name in (("default", "sep subpix=5 (default)"), ("exact", "sep subpix=0 (exact)")):
            row[f"speed_vs_sep_{key}"] = row["galaxies_per_s"] / rows[name]["galaxies_per_s"]
    agreement = _agreement(tile.image, tile.variance, reference, radii_pix, xp)

    # (b) full tile
    result_tile = measure_tile(tile, config=config, xp=xp)
    n_ours = result_tile.table.num_rows
    device_planes = tuple(xp.asarray(p) for p in (tile.image, tile.variance, tile.mask))

    def on_device() -> Any:
        return measure_sources(
            *device_planes[:2], bands=tile.bands, pixel_scale_arcsec=tile.pixel_scale_arcsec,
            mask=device_planes[2], config=config,
        )  # fmt: skip

    sep_runs = _sep_pipeline(tile, config, radii_pix)
    n_sep = len(sep_runs.pop("_table")())
    # the three whole-tile pipelines in turns, so that they share the machine's state
    whole = interleaved_median_times(
        {
            "tile": (lambda: measure_tile(tile, config=config, xp=xp), sync),
            "sources": (on_device, sync),
            "sep": (sep_runs.pop("whole"), lambda: None),
        },
        args.repeats,
    )
    ours_tile, ours_sources, sep_whole = whole["tile"], whole["sources"], whole["sep"]
    print(f"(b) measure_tile: {ours_tile['median_s']:.3f} s, {n_ours} sources")
    stage_s, stage_counts = _our_stages(tile, config, xp, args.repeats, sync)
    sep_stage_s = {
        name: median_time(stage, args.repeats, lambda: None)["median_s"]
        for name, stage in sep_runs.items()
    }
    print(f"(b) sep pipeline: {sep_whole['median_s']:.3f} s, {n_sep} sources")
    pipelines = {
        "ours: measure_tile (incl. catalogue" + (", host->GPU copy)" if xp is not np else ")"): {
            "sources": n_ours,
            **ours_tile,
        },
        "ours: measure_sources (device arrays, no catalogue)": {"sources": n_ours, **ours_sources},
        "sep: Background + measure_kron_photometry + sum_circle": {"sources": n_sep, **sep_whole},
    }
    for row in pipelines.values():
        row["sources_per_s"] = _rate(row["sources"], row["median_s"])
        row["time_vs_sep"] = row["median_s"] / sep_whole["median_s"]

    # (c) stamps
    stamp_rows = np.arange(min(n_ours, args.stamp_batch))
    stamps = median_time(lambda: result_tile.stamps(stamp_rows), args.repeats, sync)
    stamps.update(
        per_call=int(stamp_rows.size),
        size=config.stamp_size,
        stamps_per_s=_rate(stamp_rows.size, stamps["median_s"]),
    )

    # (d) a small image: fixed costs
    small = None
    if args.small_size:
        small = _small_image(args.small_size, args.seed, config, xp, args.repeats, sync)
        print(f"(d) {args.small_size}^2: ours {1e3 * small['ours_s']:.1f} ms, sep "
              f"{1e3 * small['sep_s']:.1f} ms ({small['time_vs_sep']:.2f}x)")  # fmt: skip

    scale = FULL_TILE[0] * FULL_TILE[1] / args.size**2
    result = {
        "benchmark": "photometry",
        "command": "python benchmarks/photometry.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "environment": environment,
        "threads_note": "OMP/OpenBLAS/MKL threads pinned to 1 (sep is single-threaded)",
        "repeats": args.repeats,
        "tile": {
            "size": args.size,
            "seed": args.seed,
            "bands": list(tile.bands),
            "truth_galaxies": truth.num_rows,
            "area_arcmin2": area_arcmin2,
            "galaxies_per_arcmin2": truth.num_rows / area_arcmin2,
            "simulate_s": simulate_s,
        },
        "config": json.loads(config.model_dump_json()),
        "apertures": {
            "positions_from": "sep detection of the tile (measure_kron_photometry)",
            "sources": n_ref,
            "apertures_per_source_per_band": apertures_per_source,
            "circular_radii_pix": list(radii_pix),
            "implementations": rows,
            "agreement_with_sep_exact": agreement,
        },
        "full_tile": {
            "pipelines": pipelines,
            "our_stages_s": stage_s,
            "our_counts": stage_counts,
            "measure_sources_s": ours_sources["median_s"],
            "sep_stages_s": sep_stage_s,
        },
        "stamps": stamps,
        "small_image": small,
        "projected_full_tile_s": {
            "ours": ours_tile["median_s"] * scale,
            "sep": sep_whole["median_s"] * scale,
        },
        "load_average_at_end": list(os.getloadavg()),
    }
    write_results(args.out, f"photometry_{args.device}", result, _markdown(result))


if __name__ == "__main__":
    main()
