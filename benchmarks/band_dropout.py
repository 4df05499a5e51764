"""Band dropout: MLP accuracy with every band, and with one or two bands missing, per setting.

Generated data: ``simulate_catalog`` (CSST's seven bands), noisy fluxes ``flux + N(0, flux /
snr)``, the paper's selection (S/N > 10 in g or i); the MLP with the missing-indicator features
is trained for each ``band_dropout`` on the same split and evaluated on the same test rows with
all bands, with u missing (NaN) and with NUV and u missing::

    python benchmarks/band_dropout.py --n 12000 --epochs 15 --dropout 0 0.05 0.15

prints one line per setting and case: sigma_NMAD and the outlier fraction (|dz| / (1 + z) >
0.15), and writes the table to ``benchmarks/results/band_dropout.{json,md}`` (``--out``
elsewhere).
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from csst_photoz.metrics import outlier_fraction, sigma_nmad
from csst_photoz.models import load_model
from csst_photoz.sim.catalog import simulate_catalog
from csst_photoz.sim.selection import select_snr
from csst_photoz.training import DataColumns, TrainingConfig, split_rows, train_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import cpu_model, write_results

BANDS = ("NUV", "u", "g", "r", "i", "z", "y")
CASES = {"all bands": (), "u missing": ("u",), "NUV+u missing": ("NUV", "u")}


def _table(n: int, seed: int) -> pa.Table:
    truth = simulate_catalog(n, seed=seed)
    rng = np.random.default_rng(seed + 1)
    snr = {b: truth[f"snr_{b}"].to_numpy() for b in BANDS}
    keep = select_snr(snr)
    columns = {"redshift": truth["redshift"].to_numpy()[keep]}
    for b in BANDS:
        flux = truth[f"flux_{b}"].to_numpy()[keep]
        error = flux / np.maximum(snr[b][keep], 1e-3)
        columns[f"f_{b}"] = flux + rng.normal(0.0, 1.0, flux.size) * error
        columns[f"e_{b}"] = error
    return pa.table(columns)


def _markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Band dropout: the MLP with every band and with bands missing",
        "",
        f"`{result['command']}` on {result['cpu']}, {result['date']}: "
        f"{result['n_selected']} selected galaxies, {result['n_test']} test rows, "
        f"{result['epochs']} epochs per setting.",
        "",
        "| band_dropout | case | sigma_NMAD | outliers |",
        "|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['band_dropout']:.2f} | {row['case']} | {row['sigma_nmad']:.4f} | "
            f"{100 * row['outlier_fraction']:.2f} % |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the measurement, write and return the table; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=12000, help="galaxies simulated")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--dropout", type=float, nargs="+", default=[0.0, 0.05, 0.15])
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results",
        help="results folder (default benchmarks/results)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    table = _table(args.n, args.seed)
    names = DataColumns(bands=BANDS, flux="f_{band}", flux_err="e_{band}", redshift="redshift")
    split = split_rows(table.num_rows, seed=args.seed)
    test = split.test
    z = table["redshift"].to_numpy()[test]
    fluxes = np.stack([table[f"f_{b}"].to_numpy()[test] for b in BANDS], axis=1)
    errors = np.stack([table[f"e_{b}"].to_numpy()[test] for b in BANDS], axis=1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "set.parquet"
        pq.write_table(table, path)
        for dropout in args.dropout:
            config = TrainingConfig(
                seed=args.seed, columns=names.model_dump(), max_epochs=args.epochs,
                flux_realisations=5, learning_rate=1e-3, batch_size=256, band_dropout=dropout,
                progress=False,
            )  # fmt: skip
            result = train_model("mlp", path, config, Path(tmp) / f"mlp_{dropout}.pt")
            model = load_model(result.paths.best)
            for case, missing in CASES.items():
                given = fluxes.copy()
                for band in missing:
                    given[:, BANDS.index(band)] = np.nan
                pred = model.predict(given, errors).z
                rows.append(
                    {
                        "band_dropout": dropout,
                        "case": case,
                        "sigma_nmad": float(sigma_nmad(z, pred)),
                        "outlier_fraction": float(outlier_fraction(z, pred)),
                    }
                )
    command = "python benchmarks/band_dropout.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    output = {
        "command": command.strip(),
        "cpu": cpu_model(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "n_selected": table.num_rows,
        "n_test": int(test.size),
        "epochs": args.epochs,
        "rows": rows,
    }
    write_results(args.out, "band_dropout", output, _markdown(output))
    return output


if __name__ == "__main__":
    main()
