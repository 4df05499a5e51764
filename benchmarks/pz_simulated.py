"""The MLP with and without its p(z) head on a simulated CSST training set, side by side.

Both networks are trained through ``csst-photoz train mlp --data DIR`` with the same seed
and ``--epochs N`` (``training.pz_head`` = ``none`` / ``--head``, default ``mixture``), then
the test split is predicted with ``csst_photoz.training.predict_split`` (what ``csst-photoz
predict`` writes, the catalogue's p(z) columns included). Reported: sigma_NMAD, outlier
fraction and bias of both, the largest difference of their ``z``, the Gaussian
``z +- sigma`` (PIT KS, coverage, CRPS) and the compact p(z) read back on 400 bins (PIT KS,
coverage, CRPS, CDE loss, multi-modal fraction, odds), and the n(z) bias per tomographic
bin.

Run::

    python benchmarks/pz_simulated.py --data /work/runs/train40k/part_1 \
        --workdir /work/runs/h17_pz/sim --epochs 8 --threads 1

It writes ``benchmarks/results/pz_simulated.{md,json}``.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _pz_tables import DISTRIBUTION_HEADER, distribution_row, nz_rows, point_cells
from _results import cpu_model, pin_threads, write_results


def _markdown(result: dict[str, Any]) -> str:
    lines = [
        "# MLP with and without its p(z) head on a simulated training set",
        "",
        f"`{result['command']}` on {result['cpu']}, {result['date']}; test split of "
        f"{result['n_test']} galaxies; {result['epochs']} epochs, same seed.",
        "",
        "| head | sigma_NMAD | outliers | bias | max abs z diff to none |",
        "|---|---|---|---|---|",
    ]
    for head, row in result["heads"].items():
        lines.append(f"| {head} | {point_cells(row['point'])} | {row['max_abs_dz_to_none']:.2g} |")
    lines += ["", *DISTRIBUTION_HEADER]
    for head, row in result["heads"].items():
        lines.append(distribution_row(head, "Gaussian", row["gaussian"]))
        if "pz" in row:
            lines.append(distribution_row(head, "compact p(z)", row["pz"]))
    nz = next((row["nz"] for row in result["heads"].values() if "nz" in row), None)
    if nz:
        lines += [
            "",
            "| bin | galaxies | <z> est | +- | <z> true | bias |",
            "|---|---|---|---|---|---|",
            *nz_rows(nz),
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the comparison; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="training-set folder")
    parser.add_argument("--workdir", type=Path, required=True, help="training files go here")
    parser.add_argument("--epochs", type=int, default=8, help="epochs of both networks")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    parser.add_argument(
        "--head", choices=("softmax", "mixture"), default="mixture", help="p(z) head (mixture)"
    )
    parser.add_argument(
        "--tomo", default="0,0.4,0.8,1.2,1.6,2.2,3.0", help="tomographic edges on z"
    )
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results",
        help="results folder (default benchmarks/results)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    pin_threads(args.threads)
    import numpy as np

    from csst_photoz.cli import main as cli
    from csst_photoz.metrics import calibration_metrics, point_metrics
    from csst_photoz.metrics.pz import pz_metrics
    from csst_photoz.pz import PzGrid
    from csst_photoz.pz.columns import compact_column
    from csst_photoz.pz.compact import dense_pz
    from csst_photoz.pz.nz import nz_partial, nz_summary
    from csst_photoz.training.predict import predict_split

    args.workdir.mkdir(parents=True, exist_ok=True)
    checkpoints = []
    heads = ("none", args.head)
    for head in heads:
        checkpoint = args.workdir / f"mlp_{head}.pt"
        arguments = ["train", "mlp", "--data", str(args.data), "--epochs", str(args.epochs)]
        arguments += ["--threads", str(args.threads), "--quiet", "--out", str(checkpoint)]
        arguments += ["--set", f'training.pz_head="{head}"']
        if cli(arguments) != 0:
            raise RuntimeError(f"csst-photoz {' '.join(arguments)} failed")
        checkpoints.append(checkpoint)
    table = predict_split(checkpoints, args.data, baselines=(), n_threads=args.threads)
    z_true = table["redshift"].to_numpy()
    grid = PzGrid(0.0, 4.0, 400)
    tomo = [float(x) for x in args.tomo.split(",")]
    rows: dict[str, dict[str, Any]] = {}
    names = {"none": "mlp", args.head: "mlp_2"}  # predict_split's column names, in order
    z_none = table[f"z_{names['none']}"].to_numpy()
    for head, name in names.items():
        z = table[f"z_{name}"].to_numpy()
        sigma = table[f"z_{name}_err"].to_numpy()
        point = point_metrics(z_true, z)
        gauss = calibration_metrics(z_true, z, sigma)
        row: dict[str, Any] = {
            "point": {k: float(point[k]) for k in ("sigma_nmad", "outlier_fraction", "bias")},
            "gaussian": {
                k: float(gauss[k]) for k in ("pit_ks", "coverage_68", "coverage_95", "crps")
            },
            "max_abs_dz_to_none": float(np.max(np.abs(z - z_none))),
        }
        if f"z_{name}_pz" in table.column_names:
            codes = compact_column(table, name)
            row["pz"] = pz_metrics(dense_pz(codes, grid.edges), grid, z_true)
            sums = nz_partial(
                z.astype(np.float64), codes, table["row"].to_numpy(), tomo_edges=tomo,
                grid_edges=grid.edges, replicates=50, z_true=z_true,
            )  # fmt: skip
            row["nz"] = {k: [float(v) for v in vals] for k, vals in nz_summary(sums).items()}
        rows[head] = row
    result = {
        "command": "python benchmarks/pz_simulated.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "cpu": cpu_model(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "n_test": int(z_true.size),
        "epochs": args.epochs,
        "heads": rows,
    }
    write_results(args.out, "pz_simulated", result, _markdown(result))
    return result


if __name__ == "__main__":
    main()
