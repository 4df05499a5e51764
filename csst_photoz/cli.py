"""The ``csst-photoz`` command line."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import __version__

__all__ = ["main"]


def _instrument(path: Path | None):
    from .instrument import Instrument

    return Instrument.from_toml(path) if path is not None else Instrument.default()


def depth_report(instrument) -> str:
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
    print(depth_report(_instrument(args.config)))
    return 0


def _simulate_catalog(
    n: int, seed: int, out: Path, config: Path | None, plot: Path | None, quiet: bool
) -> None:
    from .io import write_parquet_atomic
    from .sim import catalog_summary, format_summary, plot_catalog, simulate_catalog

    instrument = _instrument(config)
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
    _simulate_catalog(args.n, args.seed, args.out, args.config, args.plot, args.quiet)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    out: Path = args.out
    print("== CSST instrument model (defaults: Zhou et al. 2022) ==")
    instrument = _instrument(None)
    print(depth_report(instrument))
    print(f"\n== mock population: {args.n} galaxies, seed {args.seed} ==")
    _simulate_catalog(
        args.n, args.seed, out / "truth.parquet", None, out / "truth_nz_colours.png", False
    )
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


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
    instrument.add_argument("--config", type=Path, help="instrument TOML overriding defaults")
    instrument.set_defaults(func=_cmd_instrument)

    simulate = commands.add_parser("simulate", help="simulate mock data")
    what = simulate.add_subparsers(dest="what", required=True, metavar="WHAT")
    catalog = what.add_parser("catalog", help="a truth catalogue with synthetic photometry")
    catalog.add_argument("--n", type=_positive_int, required=True, help="number of galaxies")
    catalog.add_argument("--seed", type=int, required=True, help="master random seed")
    catalog.add_argument("--out", type=Path, required=True, help="output Parquet file")
    catalog.add_argument("--config", type=Path, help="instrument TOML overriding defaults")
    catalog.add_argument("--plot", type=Path, help="also save n(z) and colour tracks (PNG)")
    catalog.add_argument("--quiet", action="store_true", help="do not print the summary")
    catalog.set_defaults(func=_cmd_simulate_catalog)

    demo = commands.add_parser(
        "demo", help="the main job on the embedded default: instrument report + population"
    )
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder")
    demo.add_argument("--n", type=_positive_int, default=20000, help="number of galaxies")
    demo.add_argument("--seed", type=int, default=2022, help="master random seed")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``csst-photoz`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"csst-photoz: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
