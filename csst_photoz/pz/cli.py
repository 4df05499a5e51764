"""``csst-photoz pz export``, ``csst-photoz pz fit`` and ``csst-photoz nz``.

::

    csst-photoz pz fit --checkpoint mlp.pt --data DIR --out mlp-pz.pt
    csst-photoz pz export CATALOG --model mlp --out photoz_mlp.hdf5
    csst-photoz nz CATALOG --model mlp --bins 0.2,0.5,0.8,1.2,2.0 --out nz/ [--truth-column z]
    csst-photoz nz CATALOG --model mlp --equal 5 --out nz/

``pz fit`` gives a trained network a p(z) head fitted on its frozen last hidden layer (its
point estimate and uncertainty unchanged; :mod:`csst_photoz.training.pz_fit`).
``CATALOG`` is a Parquet file, a run's catalogue folder or a HATS catalogue (every
``*.parquet`` below it, :func:`~csst_photoz.pipeline.nz.catalog_partitions`). ``pz export``
writes a qp HDF5 file (``qp.hist`` on 400 bins of 0.01 over 0 <= z <= 4, ``object_id`` and
``zmode`` as ancillary data), the format RAIL reads. ``nz`` stacks the compact p(z) in
tomographic bins chosen on ``z_<m>`` (``--bins`` edges, or ``--equal N`` bins of equal
galaxy counts between the 0.5 and 99.5 % quantiles), partition by partition on a Dask cluster
(:mod:`csst_photoz.pipeline.nz`), with a Poisson bootstrap, and writes ``nz_<m>.png``,
``nz_<m>.md`` and ``nz_<m>.json``. Heavy modules are imported when the command runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..cli_options import add_cluster_options, cluster_arguments, positive_int

__all__ = ["add_nz_parser", "add_pz_parser", "main_export", "main_fit", "main_nz"]

#: Grid of the stacked n(z): 400 bins of 0.01 over 0 <= z <= 4.
NZ_GRID = np.linspace(0.0, 4.0, 401)


def _edges(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None
    if len(values) < 2 or np.any(np.diff(values) <= 0):
        raise argparse.ArgumentTypeError(f"need at least two increasing edges, got {text!r}")
    return values


def add_pz_parser(commands: Any) -> argparse.ArgumentParser:
    """Add ``pz`` (``export``, ``fit``) to the ``csst-photoz`` sub-parsers; returns its parser."""
    parser = commands.add_parser(
        "pz", help="per-galaxy p(z): export to qp HDF5, fit a head on a trained network"
    )
    actions = parser.add_subparsers(dest="pz_action", required=True, metavar="ACTION")
    export = actions.add_parser(
        "export",
        help="write one model's p(z) as a qp HDF5 file (object_id, zmode as ancillary data)",
    )
    export.add_argument("catalog", type=Path, help="Parquet file, run catalogue or HATS folder")
    export.add_argument("--model", required=True, help="the <m> of the z_<m>_pz column")
    export.add_argument("--out", type=Path, required=True, help="qp HDF5 file (.hdf5)")
    export.add_argument(
        "--id-column", default="object_id",
        help="the galaxies' identifiers, written as ancillary data (default object_id; "
        "predict --table writes the table's own id column)",
    )  # fmt: skip
    export.set_defaults(func=main_export)
    fit = actions.add_parser(
        "fit",
        help="give a trained network a p(z) head fitted on its frozen last hidden layer "
        "(z and z_err unchanged), recalibrated on its validation split",
    )
    fit.add_argument("--checkpoint", type=Path, required=True, help="trained checkpoint")
    fit.add_argument("--data", type=Path, required=True, help="the training set it was trained on")
    fit.add_argument("--out", type=Path, required=True, help="checkpoint to write")
    fit.add_argument("--head", choices=("mixture", "softmax"), help="head kind (default: mixture)")
    fit.add_argument("--bins", type=positive_int, help="bins of the p(z) grid (default 200)")
    fit.add_argument(
        "--copies", type=positive_int,
        help="augmented copies of each training galaxy (default: the network's copies per epoch)",
    )  # fmt: skip
    fit.add_argument("--epochs", type=positive_int, default=200, help="maximum epochs (200)")
    fit.add_argument("--patience", type=positive_int, default=10, help="early stopping (10)")
    fit.add_argument("--seed", type=int, default=0, help="seed of the head and augmentation (0)")
    fit.add_argument("--threads", type=positive_int, help="torch threads (default: torch's)")
    fit.add_argument("--quiet", action="store_true", help="no progress bars")
    fit.set_defaults(func=main_fit)
    return parser


def add_nz_parser(commands: Any) -> argparse.ArgumentParser:
    """Add ``nz`` to the ``csst-photoz`` sub-parsers; returns its parser."""
    parser = commands.add_parser(
        "nz", help="tomographic n(z) by stacking p(z), partition by partition, with a bootstrap"
    )
    parser.add_argument("catalog", type=Path, help="Parquet file, run catalogue or HATS folder")
    parser.add_argument("--model", required=True, help="the <m> of z_<m> and z_<m>_pz")
    bins = parser.add_mutually_exclusive_group(required=True)
    bins.add_argument("--bins", type=_edges, help="tomographic edges on z_<m>, e.g. 0.2,0.5,1")
    bins.add_argument(
        "--equal", type=positive_int, help="N bins of equal galaxy counts (quantiles of z_<m>)"
    )
    parser.add_argument("--truth-column", help="true redshifts, where the catalogue has them")
    parser.add_argument(
        "--id-column", default="object_id",
        help="integer identifiers that seed each galaxy's bootstrap weights (default object_id; "
        "predict --table writes the table's own id column)",
    )  # fmt: skip
    parser.add_argument(
        "--bootstrap", type=positive_int, default=100, help="bootstrap replicates (100)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (0)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    add_cluster_options(parser)
    parser.set_defaults(func=main_nz)
    return parser


def main_export(args: argparse.Namespace) -> int:
    """Run ``csst-photoz pz export``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..pipeline.nz import catalog_partitions
    from .columns import PZ_SUFFIX, compact_column
    from .qp_io import to_qp_ensemble, write_qp

    columns = [args.id_column, f"z_{args.model}_mode", f"z_{args.model}{PZ_SUFFIX}"]
    tables = []
    for path in catalog_partitions(args.catalog):
        names = pq.read_schema(path).names
        missing = [c for c in columns if c not in names]
        if missing:
            raise ValueError(
                f"{path}: no column {missing} (columns: {names}); is {args.model!r} a model "
                "with p(z), and is the id column right (--id-column)?"
            )
        tables.append(pq.read_table(path, columns=columns))
    table = pa.concat_tables(tables)
    ensemble = to_qp_ensemble(
        compact_column(table, args.model),
        ancil={
            args.id_column: table.column(args.id_column).to_numpy(zero_copy_only=False),
            "zmode": table.column(f"z_{args.model}_mode").to_numpy(),
        },
    )
    write_qp(ensemble, args.out)
    print(f"{args.out}: {ensemble.npdf} p(z) of z_{args.model} (qp.hist, 400 bins, 0 <= z <= 4)")
    return 0


def main_fit(args: argparse.Namespace) -> int:
    """Run ``csst-photoz pz fit``; prints the head's record and the recalibration."""
    import torch

    from ..models.pz_head import PzConfig
    from ..training.pz_fit import fit_pz_head

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    pz = None
    if args.head is not None or args.bins is not None:
        pz = PzConfig(kind=args.head or "mixture", bins=args.bins or PzConfig().bins)
    result = fit_pz_head(
        args.checkpoint, args.data, args.out, pz=pz, copies=args.copies,
        max_epochs=args.epochs, patience=args.patience, seed=args.seed,
        progress=not args.quiet,
    )  # fmt: skip
    record = result.record
    ks = (
        f"; validation PIT KS {result.pit_ks_before:.3f} -> {result.pit_ks_after:.3f}"
        if result.pit_ks_before is not None and result.pit_ks_after is not None
        else "; too few validation galaxies to recalibrate"
    )
    print(
        f"{result.path}: p(z) head fitted on {record.galaxies} galaxies x {record.copies} "
        f"copies, best epoch {record.best_epoch}/{record.epochs}, validation loss "
        f"{record.validation_loss:.4f}{ks}"
    )
    return 0


def _equal_count_edges(partitions: list[Path], column: str, n: int) -> np.ndarray:
    """Edges at quantiles of ``column`` (one column read per partition)."""
    import pyarrow.parquet as pq

    values = np.concatenate(
        [
            pq.read_table(p, columns=[column]).column(0).to_numpy(zero_copy_only=False)
            for p in partitions
        ]
    ).astype(np.float64)
    values = values[np.isfinite(values)]
    if values.size < n:
        raise ValueError(f"{values.size} finite {column} values for {n} tomographic bins")
    edges = np.quantile(values, np.linspace(0.005, 0.995, n + 1))
    if np.any(np.diff(edges) <= 0):
        raise ValueError(f"{column} has too few distinct values for {n} equal-count bins")
    return edges


def _markdown(summary: dict[str, np.ndarray], model: str, catalog: Path) -> str:
    lines = [
        f"# n(z) of z_{model}: {catalog}",
        "",
        "| bin | galaxies | mean z | median z | width | mean z err | true mean z | bias |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in range(len(summary["galaxies"])):
        lines.append(
            f"| [{summary['z_low'][t]:.3f}, {summary['z_high'][t]:.3f}) "
            f"| {int(summary['galaxies'][t])} | {summary['mean_z'][t]:.4f} "
            f"| {summary['median_z'][t]:.4f} | {summary['width'][t]:.4f} "
            f"| {summary['mean_z_err'][t]:.4f} | {summary['true_mean_z'][t]:.4f} "
            f"| {summary['mean_bias'][t]:.4f} |"
        )
    lines += [
        "",
        "bias = |<z>_est - <z>_true| / (1 + <z>_true) (Euclid's requirement: 0.002 per bin); "
        "mean z err: bootstrap standard deviation.",
    ]
    return "\n".join(lines) + "\n"


def main_nz(args: argparse.Namespace) -> int:
    """Run ``csst-photoz nz``."""
    from ..pipeline import connect
    from ..pipeline.nz import catalog_partitions, compute_nz
    from .nz import nz_summary
    from .nz_plot import plot_nz

    partitions = catalog_partitions(args.catalog)
    edges = (
        np.asarray(args.bins)
        if args.bins is not None
        else _equal_count_edges(partitions, f"z_{args.model}", args.equal)
    )
    with connect(**cluster_arguments(args)) as client:
        sums = compute_nz(
            partitions,
            model=args.model,
            tomo_edges=edges,
            grid_edges=NZ_GRID,
            client=client,
            truth_column=args.truth_column,
            id_column=args.id_column,
            replicates=args.bootstrap,
            seed=args.seed,
        )
    summary = nz_summary(sums)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"nz_{args.model}"
    plot_nz(sums, stem.with_suffix(".png"))
    stem.with_suffix(".md").write_text(_markdown(summary, args.model, args.catalog))
    record = {
        k: [None if not np.isfinite(v) else float(v) for v in values]
        for k, values in summary.items()
    }
    stem.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    print(_markdown(summary, args.model, args.catalog), end="")
    print(f"wrote {stem}.png, .md, .json")
    return 0
