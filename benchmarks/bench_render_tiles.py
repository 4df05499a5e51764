"""Rendering cost of simulated CSST tiles: per galaxy (7 bands), per tile, projected full size.

Usage: python benchmarks/bench_render_tiles.py [--size 2048] [--repeats 1] [--png]

Renders tiles of the default population (single process, one core), reports the median time
per tile and per galaxy, the peak resident memory, and the time projected to a full
9216 x 9232 CSST detector at the same galaxy density (rendering is linear in the number of
galaxies; the noise is linear in pixels). Writes JSON + Markdown to ``benchmarks/results/``
and, with ``--png``, an i/r/g composite of the first tile.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path

import galsim
import numpy as np

import csst_photoz
from csst_photoz.instrument import Instrument
from csst_photoz.sim.report import plot_tile_composite
from csst_photoz.sim.tiles import TileSpec, simulate_tile

RESULTS = Path(__file__).parent / "results"
FULL_TILE = (9216, 9232)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--png", action="store_true", help="save a colour composite")
    args = parser.parse_args()

    instrument = Instrument.default()
    seconds, galaxies = [], []
    for repeat in range(args.repeats):
        start = time.perf_counter()
        tile, truth = simulate_tile(
            TileSpec(tile_id=repeat, nx=args.size, ny=args.size, seed=2022), instrument=instrument
        )
        seconds.append(time.perf_counter() - start)
        galaxies.append(truth.num_rows)
        if repeat == 0 and args.png:
            plot_tile_composite(tile, RESULTS / f"tile_composite_{args.size}.png", dpi=64)
    per_tile = statistics.median(seconds)
    per_galaxy_ms = 1e3 * statistics.median(s / n for s, n in zip(seconds, galaxies, strict=True))
    scale = FULL_TILE[0] * FULL_TILE[1] / args.size**2
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    stamp = {
        "tile_size": args.size,
        "galaxies_per_tile": galaxies,
        "repeats": args.repeats,
        "median_seconds_per_tile": per_tile,
        "median_ms_per_galaxy_7_bands": per_galaxy_ms,
        "projected_seconds_full_9216x9232_one_core": per_tile * scale,
        "peak_rss_mb": peak_rss_mb,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (one used)",
        "python": platform.python_version(),
        "galsim": galsim.__version__,
        "numpy": np.__version__,
        "csst_photoz": csst_photoz.__version__,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"render_tiles_{args.size}.json").write_text(json.dumps(stamp, indent=2) + "\n")
    lines = [
        f"# Tile rendering, {args.size} x {args.size} px, default population, one core",
        "",
        f"{stamp['machine']}; Python {stamp['python']}; GalSim {stamp['galsim']}",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| galaxies per tile | {', '.join(map(str, galaxies))} |",
        f"| time per tile (median of {args.repeats}) | {per_tile:.1f} s |",
        f"| time per galaxy, 7 bands | {per_galaxy_ms:.1f} ms |",
        f"| projected full 9216 x 9232 tile, one core | {per_tile * scale / 60:.1f} min |",
        f"| peak resident memory | {peak_rss_mb:.0f} MB |",
    ]
    (RESULTS / f"render_tiles_{args.size}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
