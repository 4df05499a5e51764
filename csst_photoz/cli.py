"""The ``csst-photoz`` command line."""

from __future__ import annotations

import argparse
import enum
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import __version__
from .cli_options import (
    add_cluster_options,
    add_config_options,
    cluster_arguments,
    positive_int,
    project_overrides,
)
from .evaluation.cli import add_evaluate_parser
from .pipeline.cli import add_catalog_parser, add_demo_parser, add_run_parser
from .pipeline.slices import parse_slice
from .pz.cli import add_nz_parser, add_pz_parser
from .training.cli import add_calibrate_parser, add_predict_parser, add_train_parser

if TYPE_CHECKING:  # the CLI imports the heavy modules lazily so that --help is instant
    from .instrument import Instrument
    from .project_config import ProjectConfig

__all__ = ["ExitStatus", "exit_status", "main"]


class ExitStatus(enum.IntEnum):
    """Exit statuses of ``csst-photoz`` (``docs/reliability.md``).

    OK
        Done; for ``run``: every tile is done (now or earlier).
    INTERNAL_ERROR
        An unexpected error (a bug: Python prints the traceback; please report it).
    USAGE
        Usage or configuration error: bad arguments or settings, missing or unusable inputs,
        a refused checkpoint, an output folder holding other work, an unreachable cluster, a
        memory limit too small. The command did nothing, or stopped before its first tile.
    TILES_FAILED
        ``run`` finished but some tiles failed (named with their reasons, and in
        ``failures.parquet``); the others are written. Repair and rerun to resume.
    IO_ERROR
        The system refused a read or write (read-only file system, disk full, permission).
        A rerun after the repair resumes.
    INTERRUPTED
        Interrupted (Ctrl-C, SIGINT); a rerun with the same arguments resumes.
    """

    OK = 0
    INTERNAL_ERROR = 1
    USAGE = 2
    TILES_FAILED = 3
    IO_ERROR = 4
    INTERRUPTED = 130


# errors naming a path the user gave that is missing, already there or of the wrong kind
_PATH_USAGE_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError)


def exit_status(error: BaseException) -> ExitStatus | None:
    """The exit status of an error a command raised, or None for an unexpected one (a bug).

    An exception may state its own as an ``exit_status`` attribute; otherwise ``ValueError``,
    ``KeyError`` and path errors (missing, existing, not a folder, a folder) are `USAGE`,
    other ``OSError`` s `IO_ERROR`, ``KeyboardInterrupt`` `INTERRUPTED`.
    """
    declared = getattr(error, "exit_status", None)
    if declared is not None:
        return ExitStatus(declared)
    if isinstance(error, KeyboardInterrupt):
        return ExitStatus.INTERRUPTED
    if isinstance(error, (ValueError, KeyError, *_PATH_USAGE_ERRORS)):
        return ExitStatus.USAGE
    if isinstance(error, OSError):
        return ExitStatus.IO_ERROR
    return None


def _message(error: BaseException) -> str:
    """One line saying what went wrong (an OSError as ``<file>: <what the system said>``)."""
    if isinstance(error, OSError) and error.strerror and error.filename is not None:
        return f"{error.filename}: {error.strerror}"
    if isinstance(error, KeyError) and error.args:
        return str(error.args[0])
    return str(error) or type(error).__name__


def _project(
    args: argparse.Namespace, shorthands: dict[str, object] | None = None
) -> ProjectConfig:
    """The project configuration of a command: ``--config``, then ``--set``, then flags."""
    from .project_config import load_project_config

    return load_project_config(args.config, overrides=project_overrides(args, shorthands))


def _instrument(args: argparse.Namespace) -> Instrument:
    from .instrument import Instrument

    return Instrument(_project(args).instrument)


def depth_report(instrument: Instrument) -> str:
    """Per-band instrument figures beside the paper's, as text."""
    from .instrument import (
        DEFAULT_DEPTH_APERTURE_ARCSEC,
        PAPER_BACKGROUND_NOISE,
        PAPER_DEPTHS_5SIGMA,
    )

    table = instrument.summary_table()
    lines = [
        'band  pivot[A]  ZP[e-/s @AB=0]  ZP mag  noise/pix[e-] (paper)  r80["]  '
        "5sig depth (paper)  diff",
    ]
    for row in table:
        band = row["band"]
        depth = row["depth_5sigma"].value
        paper = PAPER_DEPTHS_5SIGMA.get(band, np.nan)
        lines.append(
            f"{band:>4}  {row['pivot'].value:8.0f}  {row['zero_point_rate'].value:14.4g}  "
            f"{row['zero_point_mag'].value:6.3f}  {row['background_noise'].value:8.2f} "
            f"({PAPER_BACKGROUND_NOISE.get(band, np.nan):5.2f})       "
            f"{row['psf_r80'].value:5.3f}   {depth:6.2f} ({paper:4.1f})      {depth - paper:+.2f}"
        )
    lines.append(
        f"depth: point source, 5 sigma, circular aperture of radius "
        f"{DEFAULT_DEPTH_APERTURE_ARCSEC}\" holding the PSF's encircled energy"
    )
    return "\n".join(lines)


def _cmd_instrument(args: argparse.Namespace) -> int:
    print(depth_report(_instrument(args)))
    return 0


def _simulate_catalog(
    n: int, seed: int, out: Path, instrument: Instrument, plot: Path | None, quiet: bool
) -> None:
    from .io import write_parquet_atomic
    from .sim import catalog_summary, format_summary, plot_catalog, simulate_catalog

    start = time.perf_counter()
    table = simulate_catalog(n, seed=seed, instrument=instrument)
    elapsed = time.perf_counter() - start
    write_parquet_atomic(table, out)
    print(f"wrote {table.num_rows} galaxies to {out} ({elapsed:.1f} s to simulate)")
    if not quiet:
        print(format_summary(catalog_summary(table)))
    if plot is not None:
        print(f"plot: {plot_catalog(table, plot, instrument=instrument)}")


def _cmd_simulate_catalog(args: argparse.Namespace) -> int:
    _simulate_catalog(args.n, args.seed, args.out, _instrument(args), args.plot, args.quiet)
    return 0


def _cmd_simulate_tiles(args: argparse.Namespace) -> int:
    from .instrument import Instrument
    from .pipeline import connect, simulate_tiles
    from .sim.tiles import tile_grid

    project = _project(
        args,
        {
            "simulation.paper_setup": args.paper_setup,
            "simulation.noise": args.noise,
            "simulation.cosmic_rays_per_mpix": args.cosmic_rays,
            "simulation.hot_pixel_fraction": args.hot_pixels,
            "simulation.bright_stars": args.bright_stars,
        },
    )
    instrument = Instrument(project.instrument)
    specs = tile_grid(
        args.n_tiles,
        nx=args.size,
        ny=args.size,
        seed=args.seed,
        pixel_scale_arcsec=instrument.config.pixel_scale_arcsec,
    )
    part = ""
    if args.slice is not None:
        start, stop = args.slice.bounds(len(specs))
        specs = specs[start:stop]
        part = f" (slice {args.slice}: tile ids {start}..{stop - 1})"
    start = time.perf_counter()
    with connect(**cluster_arguments(args)) as client:
        results = simulate_tiles(
            specs,
            args.out,
            client=client,
            instrument=instrument,
            render=project.simulation.render_settings(),
            effects=project.simulation.detector_effects(),
            overwrite=args.overwrite,
        )
    elapsed = time.perf_counter() - start
    done = [r for r in results if not r.skipped]
    galaxies = sum(r.n_galaxies for r in done)
    task_seconds = sum(r.seconds for r in done)
    size_mb = np.mean([r.bytes_on_disk for r in results]) / 1e6 if results else 0.0
    per_galaxy = f"{1e3 * task_seconds / galaxies:.1f} ms/galaxy" if galaxies else "no galaxies"
    print(
        f"simulated {len(done)} tiles ({len(results) - len(done)} already done) of "
        f"{args.size}x{args.size} px with {galaxies} galaxies into {args.out}{part} in "
        f"{elapsed:.1f} s wall; {task_seconds / max(len(done), 1):.1f} s per tile per worker, "
        f"{per_galaxy} (7 bands); {size_mb:.1f} MB per tile on disk"
    )
    return 0


def _cmd_simulate_stamps(args: argparse.Namespace) -> int:
    from .io.paths import slice_folder
    from .pipeline import connect, simulate_stamps

    instrument = _instrument(args)
    out = args.out if args.slice is None else slice_folder(args.out, args.slice.index)
    part = "" if args.slice is None else f" (slice {args.slice} of {args.n})"
    start = time.perf_counter()
    with connect(**cluster_arguments(args)) as client:
        n_workers = len(client.nthreads())
        table = simulate_stamps(
            args.n,
            out,
            client=client,
            seed=args.seed,
            instrument=instrument,
            size=args.size,
            selected_only=not args.all,
            slice_spec=args.slice,
            overwrite=args.overwrite,
        )
    elapsed = time.perf_counter() - start
    detected = table["detected"].to_numpy(zero_copy_only=False)
    print(
        f"simulated {table.num_rows} stamps{part} of {args.size}x{args.size} px x 7 bands into "
        f"{out} in {elapsed:.1f} s on {n_workers} workers "
        f"({1e3 * elapsed * n_workers / max(table.num_rows, 1):.0f} ms per stamp per worker); "
        f"central galaxy detected in {detected.mean():.1%}"
    )
    return 0


def _cmd_simulate_merge(args: argparse.Namespace) -> int:
    from .io.tile_zarr import tile_size_on_disk
    from .io.training_sets import merge_training_sets

    start = time.perf_counter()
    try:
        table = merge_training_sets(args.parts, args.out, overwrite=args.overwrite, mode=args.mode)
    except FileExistsError as exc:
        print(f"csst-photoz: error: {exc}", file=sys.stderr)
        return ExitStatus.USAGE
    elapsed = time.perf_counter() - start
    print(
        f"merged {table.num_rows} stamps from {len(args.parts)} training sets into {args.out} "
        f"in {elapsed:.1f} s ({tile_size_on_disk(args.out) / 1e6:.0f} MB on disk)"
    )
    return 0


def _add_slice_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--slice", type=parse_slice, metavar="INDEX/COUNT",
        help=f"only slice INDEX (0-based) of COUNT contiguous ranges of {what} (job arrays)",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``csst-photoz``."""
    parser = argparse.ArgumentParser(
        prog="csst-photoz",
        description="Photometric redshifts for the CSST survey: simulate, measure, infer.",
    )
    parser.add_argument("--version", action="version", version=f"csst-photoz {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    instrument = commands.add_parser(
        "instrument", help="print the instrument model's figures beside the paper's"
    )
    add_config_options(instrument, sections="[instrument]")
    instrument.set_defaults(func=_cmd_instrument)

    simulate = commands.add_parser("simulate", help="simulate mock data")
    what = simulate.add_subparsers(dest="what", required=True, metavar="WHAT")
    catalog = what.add_parser("catalog", help="a truth catalogue with synthetic photometry")
    catalog.add_argument("--n", type=positive_int, required=True, help="number of galaxies")
    catalog.add_argument("--seed", type=int, required=True, help="master random seed")
    catalog.add_argument("--out", type=Path, required=True, help="output Parquet file")
    add_config_options(catalog, sections="[instrument]")
    catalog.add_argument("--plot", type=Path, help="also save n(z) and colour tracks (PNG)")
    catalog.add_argument("--quiet", action="store_true", help="do not print the summary")
    catalog.set_defaults(func=_cmd_simulate_catalog)

    tiles = what.add_parser("tiles", help="seven-band sky tiles (zarr) with truth tables")
    tiles.add_argument("--n-tiles", type=positive_int, required=True, help="number of tiles")
    tiles.add_argument("--size", type=positive_int, default=2048, help="tile side [pixels]")
    tiles.add_argument("--seed", type=int, required=True, help="master random seed")
    tiles.add_argument("--out", type=Path, required=True, help="output folder")
    add_config_options(tiles, sections="[instrument] and [simulation]")
    tiles.add_argument(
        "--paper-setup", action="store_true", default=None,
        help="one morphology in all bands and no PSF (simulation.paper_setup = true)",
    )  # fmt: skip
    tiles.add_argument(
        "--no-noise", action="store_false", dest="noise", default=None,
        help="noiseless images (simulation.noise = false)",
    )  # fmt: skip
    tiles.add_argument(
        "--cosmic-rays", type=float, help="hits/exposure/Mpix (simulation.cosmic_rays_per_mpix)"
    )
    tiles.add_argument(
        "--hot-pixels", type=float, help="fraction of hot pixels (simulation.hot_pixel_fraction)"
    )
    tiles.add_argument(
        "--bright-stars", type=int, help="saturating stars per tile (simulation.bright_stars)"
    )
    _add_slice_option(tiles, "tile ids; all slices share OUT")
    add_cluster_options(tiles)
    tiles.add_argument("--overwrite", action="store_true", help="re-simulate finished tiles")
    tiles.set_defaults(func=_cmd_simulate_tiles)

    stamps = what.add_parser("stamps", help="seven-band training stamps (zarr) + table (Parquet)")
    stamps.add_argument("--n", type=positive_int, required=True, help="number of stamps")
    stamps.add_argument("--seed", type=int, required=True, help="master random seed")
    stamps.add_argument("--out", type=Path, required=True, help="output folder")
    stamps.add_argument("--size", type=positive_int, default=64, help="stamp side [pixels]")
    stamps.add_argument("--all", action="store_true", help="not only the SNR > 10 (g|i) sample")
    stamps.add_argument(
        "--overwrite",
        action="store_true",
        help="start over in OUT (default: resume an interrupted run with the same settings; "
        "a folder of other settings is refused)",
    )
    add_config_options(stamps, sections="[instrument]")
    _add_slice_option(stamps, "rows, into OUT/slice_INDEX (join them with merge)")
    add_cluster_options(stamps)
    stamps.set_defaults(func=_cmd_simulate_stamps)

    merge = what.add_parser(
        "merge",
        help="merge training-set folders (stamps) into one",
        description=(
            "Join training-set folders (stamps.parquet + stamps.zarr) into one folder of the "
            "same layout. The --slice parts of one `simulate stamps` run are joined in slice "
            "order, unchanged, into the folder the single run writes. Other sets (for example "
            "of different seeds) are joined in the order given, with galaxy_id renumbered and "
            "the columns part, source_row and source_galaxy_id leading back to the source. A "
            "part given twice, or a copy of a part (the same seed and rows, or the same data), "
            "is refused."
        ),
    )
    merge.add_argument(
        "parts",
        nargs="+",
        type=Path,
        metavar="PART",
        help="training-set folders, in row order (the slices of one run in any order)",
    )
    merge.add_argument("--out", type=Path, required=True, help="output folder")
    merge.add_argument("--overwrite", action="store_true", help="replace an existing output")
    merge.add_argument(
        "--mode", choices=("auto", "slices", "renumber"), default="auto",
        help="slices: the --slice parts of one run, joined into that run's folder unchanged; "
        "renumber: independent sets, renumbered, with provenance columns; auto (default): "
        "slices when every part is a slice of one run, otherwise renumber",
    )  # fmt: skip
    merge.set_defaults(func=_cmd_simulate_merge)

    add_train_parser(commands)
    add_predict_parser(commands)
    add_calibrate_parser(commands)
    add_evaluate_parser(commands)
    add_pz_parser(commands)
    add_nz_parser(commands)

    add_run_parser(commands)
    add_catalog_parser(commands)
    add_demo_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``csst-photoz`` console script; returns an `ExitStatus`."""
    args = build_parser().parse_args(argv)  # a usage error exits here with status 2
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("csst-photoz: interrupted; rerun the same command to resume", file=sys.stderr)
        return ExitStatus.INTERRUPTED
    except Exception as exc:
        status = exit_status(exc)
        if status is None:
            raise  # a bug: the traceback is what a report needs (exit status 1)
        print(f"csst-photoz: error: {_message(exc)}", file=sys.stderr)
        return status


if __name__ == "__main__":
    sys.exit(main())
