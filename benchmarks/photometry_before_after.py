"""Photometry time of this checkout beside earlier commits and sep's recipe, in one process.

Usage: python benchmarks/photometry_before_after.py [--before 6e1227f bc815ab]
       [--sizes 256 512 2048] [--repeats 21] [--big-repeats 5] [--seed 2022]
       [--out benchmarks/results]

Each ``--before`` commit's ``csst_photoz`` is extracted (``git archive``) into a temporary folder
as the package ``csst_photoz_<commit>`` (its absolute imports renamed to match), so that one
process holds every version. Per size, one tile simulated by today's code is measured by each
version's ``measure_tile`` at that version's defaults (catalogue included) and by sep's recipe
(``photometry.py`` (b): ``sep.Background`` per band, ``measure_kron_photometry``,
``sep.sum_circle``), in turns (`interleaved_median_times`): ``--repeats`` rounds after a warm-up
(``--big-repeats`` from 1024^2 up); medians. One core: the thread pools are pinned to one
thread before NumPy loads, as in ``photometry.py``. Timing several versions in one process, in
turns, makes their ratios robust against a machine whose load drifts.

Writes ``photometry_before_after_cpu.json`` / ``.md``.
"""

from __future__ import annotations

import os

from _results import (
    MALLOC_VARIABLES,
    cpu_model,
    interleaved_median_times,
    pin_threads,
    write_results,
)

pin_threads(1)  # before NumPy: sep is single-threaded

import argparse  # noqa: E402
import importlib  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from photometry import _sep_pipeline  # noqa: E402

from csst_photoz.photometry.measure import PhotometryConfig  # noqa: E402
from csst_photoz.photometry.tile_photometry import measure_tile  # noqa: E402
from csst_photoz.sim.tiles import TileSpec, simulate_tile  # noqa: E402

RESULTS = Path(__file__).parent / "results"
REPOSITORY = Path(__file__).resolve().parents[1]
NOW = "this checkout"


def extract(commit: str, folder: Path) -> str:
    """``csst_photoz`` at ``commit`` as the package ``csst_photoz_<commit>`` in ``folder``."""
    name = f"csst_photoz_{re.sub(r'[^0-9A-Za-z]', '_', commit)}"
    archive = subprocess.run(
        ["git", "-C", str(REPOSITORY), "archive", commit, "csst_photoz"],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    (folder / "csst_photoz").rename(folder / name)
    for path in (folder / name).rglob("*.py"):
        path.write_text(re.sub(r"\bcsst_photoz\b", name, path.read_text()))
    return name


def measure(size: int, seed: int, versions: dict[str, Any], repeats: int) -> dict[str, Any]:
    """One size: every version and sep's recipe in turns."""
    tile, truth = simulate_tile(TileSpec(tile_id=0, nx=size, ny=size, seed=seed))
    config = PhotometryConfig()
    radii = tuple(r / tile.pixel_scale_arcsec for r in config.circular_radii_arcsec)
    sep_runs = _sep_pipeline(tile, config, radii)
    rows = {"sep": len(sep_runs.pop("_table")())}
    functions = {}
    for label, (measure_version, version_config) in versions.items():
        rows[label] = measure_version(tile, config=version_config).table.num_rows
        functions[label] = (
            lambda m=measure_version, c=version_config: m(tile, config=c),
            lambda: None,
        )
    functions["sep"] = (sep_runs["whole"], lambda: None)
    times = interleaved_median_times(functions, repeats)
    sep_s = times["sep"]["median_s"]
    return {
        "size": size,
        "truth_galaxies": truth.num_rows,
        "repeats": repeats,
        "runs": {
            label: {
                "rows": rows[label],
                "median_s": times[label]["median_s"],
                "time_vs_sep": times[label]["median_s"] / sep_s,
                "time_vs_now": times[label]["median_s"] / times[NOW]["median_s"],
            }
            for label in functions
        },
    }


def markdown(result: dict[str, Any]) -> str:
    """Per size, every version's median time beside sep's."""
    lines = [
        "# Photometry time before and after, beside sep's recipe",
        "",
        f"`{result['command']}` on {result['cpu_model']}, one core (thread pools pinned to 1; "
        f"malloc settings {result['malloc']}). "
        f"Load average at start {result['load_average_at_start'][0]:.2f}, at end "
        f"{result['load_average_at_end'][0]:.2f}. Each version at its own defaults, catalogue "
        "included; medians of the rounds, versions in turns within one process.",
        "",
        "| size | code | rows | median [ms] | vs sep | vs this checkout |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for entry in result["sizes"]:
        for label, run in entry["runs"].items():
            lines.append(
                f"| {entry['size']}^2 ({entry['repeats']} rounds) | {label} | {run['rows']} "
                f"| {1e3 * run['median_s']:.1f} | {run['time_vs_sep']:.2f}x "
                f"| {run['time_vs_now']:.2f}x |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", nargs="*", default=["6e1227f", "bc815ab"],
                        help="earlier commits to time (default: before issue 18; issue 18 "
                        "before its fixed-cost cuts)")  # fmt: skip
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 2048])
    parser.add_argument("--repeats", type=int, default=21, help="rounds below 1024^2")
    parser.add_argument("--big-repeats", type=int, default=5, help="rounds from 1024^2 up")
    parser.add_argument("--seed", type=int, default=2022, help="simulation seed")
    parser.add_argument("--out", type=Path, default=RESULTS, help="output folder")
    args = parser.parse_args(argv)
    if min(args.sizes) < 64 or min(args.repeats, args.big_repeats) < 1:
        parser.error("need sizes >= 64 and positive repeats")
    load_at_start = list(os.getloadavg())
    with tempfile.TemporaryDirectory() as temporary:
        sys.path.insert(0, temporary)
        versions: dict[str, Any] = {}
        for commit in args.before:
            package = extract(commit, Path(temporary))
            module = importlib.import_module(f"{package}.photometry.tile_photometry")
            config = importlib.import_module(f"{package}.photometry.measure").PhotometryConfig
            versions[f"commit {commit}"] = (module.measure_tile, config())
        versions[NOW] = (measure_tile, PhotometryConfig())
        sizes = []
        for size in args.sizes:
            repeats = args.repeats if size < 1024 else args.big_repeats
            sizes.append(measure(size, args.seed, versions, repeats))
            print(
                f"{size}^2: "
                + ", ".join(
                    f"{label} {1e3 * run['median_s']:.1f} ms ({run['time_vs_sep']:.2f}x sep)"
                    for label, run in sizes[-1]["runs"].items()
                ),
                flush=True,
            )
    result = {
        "benchmark": "photometry_before_after",
        "command": "python benchmarks/photometry_before_after.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "cpu_model": cpu_model(),
        "threads": 1,
        "malloc": {name: os.environ.get(name) for name in MALLOC_VARIABLES},
        "before": args.before,
        "load_average_at_start": load_at_start,
        "load_average_at_end": list(os.getloadavg()),
        "sizes": sizes,
    }
    write_results(args.out, "photometry_before_after_cpu", result, markdown(result))


if __name__ == "__main__":
    main()
