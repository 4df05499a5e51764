"""Detection throughput and quality on a simulated tile: ours beside sep, in one run.

Usage: python benchmarks/detection.py [--size 2048] [--repeats 3] [--device cpu|gpu]
       [--seed 2022] [--radius 2] [--out benchmarks/results]

One simulated tile (GalSim galaxies, CSST PSFs and noise) and its truth catalogue. The detection
image is the paper's: the sum of the background-subtracted g, r, i, z planes (sep's mesh
background per band), with its summed variance; every detector below gets that same image and
the same settings (:class:`~csst_photoz.photometry.measure.PhotometryConfig`: 1.5 sigma on the
matched-filter S/N, sep's 3 x 3 kernel, 5 pixels, 32 levels, contrast 0.005).

**Throughput**, the median over ``--repeats`` timed calls after a warm-up, one core (thread
pools pinned to 1 before NumPy loads), in Mpix/s of the detection image:

* ours: :func:`~csst_photoz.photometry.detection.detect_sources` (matched filter, threshold,
  8-connected labels, multi-threshold deblending, moments, flags, segmentation), on NumPy, or
  on CuPy with ``--device gpu`` (synchronised before and after each call; sep stays on the CPU);
* sep: ``sep.extract`` with ``clean=False`` (the same work) and with ``clean=True`` (its
  default, which also runs CLEAN).

**Quality** against the truth, matched one to one within ``--radius`` pixels
(:func:`csst_photoz.evaluation.match.match_positions`): completeness (truth galaxies found)
per true i magnitude, and purity (detections that are a truth galaxy), for our raw detections,
our catalogue after the detection-S/N cut that replaces CLEAN (``measure_tile``), and sep with
and without CLEAN.

Writes ``detection_<device>.json`` and ``detection_<device>.md`` into ``--out``.
"""

from __future__ import annotations

from _results import (
    MALLOC_VARIABLES,
    THREAD_VARIABLES,
    array_module_for,
    cpu_model,
    median_time,
    pin_threads,
    synchroniser,
    write_results,
)

# one thread for every numerical library, before anything imports NumPy (sep is single-threaded)
pin_threads(1)

import argparse  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import sep  # noqa: E402

import csst_photoz  # noqa: E402
from csst_photoz.evaluation.match import match_positions  # noqa: E402
from csst_photoz.photometry.backend import to_numpy  # noqa: E402
from csst_photoz.photometry.detection import detect_sources  # noqa: E402
from csst_photoz.photometry.measure import PhotometryConfig  # noqa: E402
from csst_photoz.photometry.tile_photometry import measure_tile  # noqa: E402
from csst_photoz.sim.tiles import TileSpec, simulate_tile  # noqa: E402
from csst_photoz.tile import Tile  # noqa: E402

RESULTS = Path(__file__).parent / "results"
#: True i-magnitude bins of the completeness table.
MAG_EDGES = (18.0, 22.0, 23.0, 24.0, 25.0, 26.0, 27.0)


def detection_image(tile: Tile, config: PhotometryConfig) -> tuple[np.ndarray, np.ndarray]:
    """Sum of the sep-background-subtracted detection bands and its variance (float32)."""
    image = np.zeros(tile.image.shape[1:], dtype=np.float32)
    variance = np.zeros_like(image)
    for band in config.detection_bands:
        k = tile.band_index(band)
        plane = np.ascontiguousarray(tile.image[k], dtype=np.float32)
        background = sep.Background(
            plane, bw=config.background_box, bh=config.background_box,
            fw=config.background_filter, fh=config.background_filter,
        )  # fmt: skip
        image += plane - background.back()
        variance += tile.variance[k]
    return image, variance


def sep_extract(image: np.ndarray, variance: np.ndarray, config: PhotometryConfig, clean: bool):
    """``sep.extract`` on the detection image with our settings; returns its object array."""
    if sep.get_extract_pixstack() < image.size:
        sep.set_extract_pixstack(int(image.size))
    return sep.extract(
        image, config.threshold_sigma, err=np.sqrt(variance), minarea=config.min_area,
        deblend_nthresh=config.deblend_nthresh, deblend_cont=config.deblend_cont, clean=clean,
    )  # fmt: skip


def quality(
    truth_x: np.ndarray, truth_y: np.ndarray, truth_mag: np.ndarray,
    x: np.ndarray, y: np.ndarray, radius: float,
) -> dict[str, Any]:  # fmt: skip
    """Completeness per true i magnitude and overall purity of one set of detections."""
    matched = match_positions(truth_x, truth_y, x, y, radius=radius)
    found = np.zeros(truth_x.size, dtype=bool)
    found[matched.truth] = True
    which = np.digitize(truth_mag, MAG_EDGES) - 1
    bins = []
    for k in range(len(MAG_EDGES) - 1):
        inside = which == k
        n = int(inside.sum())
        bins.append(
            {
                "mag_lo": MAG_EDGES[k],
                "mag_hi": MAG_EDGES[k + 1],
                "truth": n,
                "completeness": float(found[inside].mean()) if n else None,
            }
        )
    return {
        "detections": int(x.size),
        "matched": int(found.sum()),
        "purity": float(found.sum() / x.size) if x.size else None,
        "completeness_by_i_mag": bins,
    }


def _environment(device: str, xp: Any) -> dict[str, Any]:
    import scipy

    versions = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "sep": sep.__version__,
        "csst_photoz": csst_photoz.__version__,
    }
    environment = {
        "device": device,
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": {name: os.environ.get(name) for name in THREAD_VARIABLES},
        "malloc": {name: os.environ.get(name) for name in MALLOC_VARIABLES},
        "load_average_at_start": list(os.getloadavg()),
        "versions": versions,
    }
    if xp is not np:
        versions["cupy"] = xp.__version__
        properties = xp.cuda.runtime.getDeviceProperties(xp.cuda.Device().id)
        environment["gpu"] = properties["name"].decode()
    return environment


def _markdown(result: dict[str, Any]) -> str:
    env, tile = result["environment"], result["tile"]
    lines = [
        f"# Detection, {tile['ny']} x {tile['nx']} px detection image (g+r+i+z), "
        f"device: {env['device']}",
        "",
        f"{env['cpu_model']}; {env['cpu_count']} CPU cores, thread pools pinned to 1"
        + (f"; GPU {env['gpu']}" if "gpu" in env else "")
        + f"; csst_photoz {env['versions']['csst_photoz']}, sep {env['versions']['sep']}.",
        "",
        f"Tile: seed {tile['seed']}, {tile['truth_galaxies']} simulated galaxies "
        f"({tile['galaxies_per_arcmin2']:.0f} / arcmin^2); medians of {result['repeats']} after "
        f"a warm-up. Load average at start {env['load_average_at_start'][0]:.2f}, at end "
        f"{result['load_average_at_end'][0]:.2f}.",
        "",
        "## Throughput",
        "",
        "| detector | detections | time [ms] | Mpix/s | vs sep (clean=False) |",
        "| --- | --- | --- | --- | --- |",
    ]
    reference = result["throughput"]["sep extract (clean=False)"]["median_s"]
    for name, row in result["throughput"].items():
        lines.append(
            f"| {name} | {row['detections']:,} | {1e3 * row['median_s']:.1f} | "
            f"{row['mpix_per_s']:.1f} | {reference / row['median_s']:.2f}x |"
        )
    names = list(result["quality"])
    lines += [
        "",
        f"## Quality against the truth (one-to-one match within {result['radius_pix']} px)",
        "",
        "| | " + " | ".join(names) + " |",
        "| --- |" + " --- |" * len(names),
        "| detections | " + " | ".join(f"{result['quality'][n]['detections']:,}" for n in names)
        + " |",
        "| purity | " + " | ".join(_percent(result["quality"][n]["purity"]) for n in names) + " |",
    ]  # fmt: skip
    for k, edge in enumerate(result["quality"][names[0]]["completeness_by_i_mag"]):
        label = f"completeness, {edge['mag_lo']:g} <= i < {edge['mag_hi']:g} ({edge['truth']})"
        cells = [
            _percent(result["quality"][n]["completeness_by_i_mag"][k]["completeness"])
            for n in names
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="tile side [pixels]")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per detector")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--seed", type=int, default=2022, help="simulation seed")
    parser.add_argument("--radius", type=float, default=2.0, help="match radius [pixels]")
    parser.add_argument("--out", type=Path, default=RESULTS, help="output folder")
    args = parser.parse_args(argv)

    xp = array_module_for(args.device)
    sync = synchroniser(xp)
    environment = _environment(args.device, xp)
    print(f"simulating a {args.size}^2 tile (seed {args.seed}) ...", flush=True)
    tile, truth = simulate_tile(TileSpec(tile_id=0, nx=args.size, ny=args.size, seed=args.seed))
    config = PhotometryConfig()
    image, variance = detection_image(tile, config)
    megapixels = image.size / 1e6
    on_device = xp.asarray(image), xp.asarray(variance)
    settings = {
        "threshold_sigma": config.threshold_sigma,
        "min_area": config.min_area,
        "deblend_cont": config.deblend_cont,
        "deblend_nthresh": config.deblend_nthresh,
    }

    def ours() -> Any:
        return detect_sources(*on_device, **settings)

    detectors = {
        f"ours detect_sources ({args.device})": (ours, sync),
        "sep extract (clean=False)": (lambda: sep_extract(image, variance, config, False), None),
        "sep extract (clean=True)": (lambda: sep_extract(image, variance, config, True), None),
    }
    throughput, positions = {}, {}
    for name, (function, device_sync) in detectors.items():
        print(f"timing {name} ...", flush=True)
        timing = median_time(function, args.repeats, device_sync or (lambda: None))
        found = function()
        if name.startswith("ours"):
            x, y = to_numpy(found.x), to_numpy(found.y)
        else:
            x, y = (np.asarray(found[c], dtype=np.float64) for c in ("x", "y"))
        positions[name] = (x, y)
        throughput[name] = {
            **timing,
            "detections": int(x.size),
            "mpix_per_s": megapixels / timing["median_s"],
        }
    catalogue = measure_tile(tile, config=config, xp=xp).table
    positions["ours after the detection-S/N cut (measure_tile)"] = (
        np.asarray(catalogue["x"], dtype=np.float64),
        np.asarray(catalogue["y"], dtype=np.float64),
    )
    truth_x, truth_y = (truth[c].to_numpy().astype(np.float64) for c in ("x", "y"))
    truth_mag = truth["mag_i"].to_numpy().astype(np.float64)
    order = [next(iter(detectors)), "ours after the detection-S/N cut (measure_tile)",
             "sep extract (clean=False)", "sep extract (clean=True)"]  # fmt: skip
    result = {
        "benchmark": "detection",
        "environment": environment,
        "tile": {
            "nx": args.size,
            "ny": args.size,
            "seed": args.seed,
            "truth_galaxies": len(truth),
            "galaxies_per_arcmin2": len(truth)
            / (args.size**2 * (tile.pixel_scale_arcsec / 60) ** 2),
            "detection_bands": list(config.detection_bands),
        },
        "settings": settings,
        "repeats": args.repeats,
        "radius_pix": args.radius,
        "throughput": throughput,
        "quality": {
            name: quality(truth_x, truth_y, truth_mag, *positions[name], args.radius)
            for name in order
        },
        "load_average_at_end": list(os.getloadavg()),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    write_results(args.out, f"detection_{args.device}", result, _markdown(result))


if __name__ == "__main__":
    main()
