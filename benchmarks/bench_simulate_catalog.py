"""Time to simulate a mock population and its synthetic CSST photometry.

Usage: python benchmarks/bench_simulate_catalog.py [--n 100000] [--repeats 3]

Prints the median wall time of each stage over the repeats (population draw, synthetic
photometry of bulge + disk, the whole ``simulate_catalog``) and writes JSON and Markdown into
``benchmarks/results/``, stamped with the machine and versions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

import csst_photoz
from csst_photoz.instrument import Instrument
from csst_photoz.sim import SyntheticPhotometer, sample_population, simulate_catalog

RESULTS = Path(__file__).parent / "results"


def _median_time(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    instrument = Instrument.default()
    photometer = SyntheticPhotometer.for_instrument(instrument)
    population = sample_population(args.n, np.random.default_rng(0))
    stages = {
        "population draw": lambda: sample_population(args.n, np.random.default_rng(0)),
        "template counts (dust + IGM, 4 templates x 7 bands)": lambda: photometer.template_counts(
            population.redshift, population.ebv
        ),
        "simulate_catalog (everything, incl. instrument set-up)": lambda: simulate_catalog(
            args.n, seed=0, instrument=instrument
        ),
    }
    timings = {name: _median_time(stage, args.repeats) for name, stage in stages.items()}
    stamp = {
        "n_galaxies": args.n,
        "repeats": args.repeats,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "csst_photoz": csst_photoz.__version__,
        "median_seconds": timings,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "simulate_catalog.json").write_text(json.dumps(stamp, indent=2) + "\n")
    lines = [
        f"# simulate_catalog: {args.n} galaxies, median of {args.repeats}",
        "",
        f"machine: {stamp['machine']}; Python {stamp['python']}; NumPy {stamp['numpy']}",
        "",
        "| stage | median [s] | galaxies/s |",
        "| --- | --- | --- |",
    ]
    for name, seconds in timings.items():
        lines.append(f"| {name} | {seconds:.2f} | {args.n / seconds:,.0f} |")
    (RESULTS / "simulate_catalog.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
