"""Command-line front ends of the batch processor: ``run``, ``catalog finalize`` and ``demo``.

::

    csst-photoz run TILES... --out DIR [--models DIR|FILE ...] [--config project.toml]
                    [--set section.key=value ...] [--device cpu|cuda|auto] [--threads N]
                    [--scheduler-file F | --workers N [--memory-limit M]] [--overwrite]
    csst-photoz catalog finalize RUN_DIR [--out DIR] [--name catalog] [--allow-failed]
                                 [--workers N]
    csst-photoz demo --out DIR [--tiles 3] [--size 2048] [--seed 2022] [--workers N]

Dask, torch and hats are imported only when a command runs, so ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..cli_options import (
    add_cluster_options,
    add_config_options,
    cluster_arguments,
    positive_int,
    project_overrides,
)

__all__ = ["add_catalog_parser", "add_demo_parser", "add_run_parser"]


def _models_argument(values: list[Path] | None, no_models: bool) -> Any:
    if no_models:
        return []
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def _cmd_run(args: argparse.Namespace) -> int:
    from ..cli import ExitStatus
    from ..io.run_store import RunSettingsError
    from ..project_config import load_project_config
    from .batch import run

    overrides = project_overrides(
        args, {"pipeline.device": args.device, "pipeline.threads": args.threads}
    )
    config = load_project_config(args.config, overrides=overrides).pipeline
    try:
        summary = run(
            args.tiles,
            args.out,
            models=_models_argument(args.models, args.no_models),
            config=config,
            **cluster_arguments(args),
            overwrite=args.overwrite,
            progress=not args.quiet,
        )
    except RunSettingsError as error:  # name the flag, not the keyword
        raise error.with_option("--overwrite") from None
    print(summary)
    return ExitStatus.TILES_FAILED if summary.tiles_failed else ExitStatus.OK


def _cmd_finalize(args: argparse.Namespace) -> int:
    from .cluster import connect
    from .finalize import CatalogExistsError, FailedTilesError, finalize_run

    try:
        with connect(**cluster_arguments(args)) as client:
            path, rows, tiles = finalize_run(
                args.run, args.out, catalog_name=args.name, client=client,
                allow_failed=args.allow_failed, overwrite=args.overwrite,
            )  # fmt: skip
    except (CatalogExistsError, FailedTilesError) as error:  # name the flag, not the keyword
        raise error.with_option("--allow-failed" if isinstance(error, FailedTilesError)
                                else "--overwrite") from None  # fmt: skip
    print(f"HATS catalogue of {rows} rows from {tiles} tiles: {path}  (open with lsdb.read_hats)")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    result = run_demo(
        args.out,
        n_tiles=args.tiles,
        size=args.size,
        seed=args.seed,
        models=args.models,
        n_workers=args.workers,
        finalize=not args.no_finalize,
        progress=not args.quiet,
    )
    print(result)
    return 0


def add_run_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``run`` (tiles -> per-tile photo-z catalogue partitions) to a parser."""
    parser = subparsers.add_parser(
        "run",
        help="measure tiles and predict photo-z (Dask): one Parquet partition per tile",
        epilog="exit status: 0 every tile done; 2 usage or configuration error (nothing done); "
        "3 some tiles failed (named; rerun after repair); 4 a read or write refused by the "
        "system (read-only, disk full); 130 interrupted (rerun to resume). See "
        "docs/reliability.md.",
    )
    parser.add_argument(
        "tiles", nargs="+", metavar="TILES",
        help="tile stores (*.zarr), FITS band files, folders, globs or manifests (.txt/.parquet)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, required=True, help="run folder (resumes if present)")
    parser.add_argument(
        "--models", type=Path, action="append",
        help="checkpoint folder or file (repeatable; default: the shipped checkpoints)",
    )  # fmt: skip
    parser.add_argument("--no-models", action="store_true", help="photometry only")
    add_config_options(parser, sections="[pipeline] and [photometry]")
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), help="where tiles run (pipeline.device)"
    )
    parser.add_argument(
        "--threads", type=positive_int, help="torch threads per CPU worker (pipeline.threads)"
    )
    add_cluster_options(parser)
    parser.add_argument(
        "--overwrite", action="store_true", help="discard an earlier run with other settings"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=_cmd_run)
    return parser


def add_catalog_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``catalog finalize`` (per-tile partitions -> HATS catalogue) to a parser."""
    parser = subparsers.add_parser("catalog", help="catalogue operations")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    finalize = actions.add_parser(
        "finalize",
        help="turn a run's per-tile partitions into a HATS catalogue (hats-import)",
        epilog="Checks first that every done-marker has its partition (size, SHA-256) and "
        "every partition a marker, that manifest.parquet agrees, and that every partition was "
        "made with run.json's settings; a run with failed tiles needs --allow-failed. Exit "
        "status 2 names what is wrong (docs/reliability.md).",
    )
    finalize.add_argument("run", type=Path, metavar="RUN_DIR", help="folder of `csst-photoz run`")
    finalize.add_argument("--out", type=Path, help="parent folder (default: RUN_DIR)")
    finalize.add_argument("--name", default="catalog", help="catalogue name (default: catalog)")
    finalize.add_argument("--overwrite", action="store_true", help="replace an existing catalogue")
    finalize.add_argument(
        "--allow-failed", action="store_true",
        help="build the catalogue although some tiles failed (named in its provenance)",
    )  # fmt: skip
    add_cluster_options(finalize)
    finalize.set_defaults(func=_cmd_finalize)
    return parser


def add_demo_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``demo`` (simulate, run, finalise, evaluate a small field) to a parser."""
    parser = subparsers.add_parser(
        "demo", help="end to end on a small simulated field: tiles, run, HATS catalogue, report"
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--tiles", type=positive_int, default=3, help="tiles to simulate")
    parser.add_argument("--size", type=positive_int, default=2048, help="tile side [pixels]")
    parser.add_argument("--seed", type=int, default=2022, help="master seed of the field")
    parser.add_argument("--models", type=Path, help="checkpoints (default: shipped)")
    parser.add_argument("--workers", type=positive_int, help="local Dask workers")
    parser.add_argument("--no-finalize", action="store_true", help="skip the HATS catalogue")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=_cmd_demo)
    return parser
