"""Band dropout: MLP accuracy with every band, and with one or two bands missing, per setting.

Generated data: ``simulate_catalog`` (CSST's seven bands), noisy fluxes ``flux + N(0, flux /
snr)``, the paper's selection (S/N > 10 in g or i); the MLP with the missing-indicator features
is trained for each ``band_dropout`` on the same split and evaluated on the same test rows with
all bands, with u missing (NaN) and with NUV and u missing::

    python benchmarks/band_dropout.py --n 12000 --epochs 15 --dropout 0 0.05 0.15

prints one line per setting and case: sigma_NMAD and the outlier fraction (|dz| / (1 + z) >
0.15).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from csst_photoz.metrics import outlier_fraction, sigma_nmad
from csst_photoz.models import load_model
from csst_photoz.sim.catalog import simulate_catalog
from csst_photoz.sim.selection import select_snr
from csst_photoz.training import DataColumns, TrainingConfig, split_rows, train_model

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


def main() -> None:
    """Run the measurement and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=12000, help="galaxies simulated")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--dropout", type=float, nargs="+", default=[0.0, 0.05, 0.15])
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    table = _table(args.n, args.seed)
    names = DataColumns(bands=BANDS, flux="f_{band}", flux_err="e_{band}", redshift="redshift")
    split = split_rows(table.num_rows, seed=args.seed)
    test = split.test
    z = table["redshift"].to_numpy()[test]
    fluxes = np.stack([table[f"f_{b}"].to_numpy()[test] for b in BANDS], axis=1)
    errors = np.stack([table[f"e_{b}"].to_numpy()[test] for b in BANDS], axis=1)
    print(f"{table.num_rows} selected galaxies, {test.size} test")
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
                print(
                    f"band_dropout {dropout:4.2f}  {case:14s}  sigma_NMAD "
                    f"{sigma_nmad(z, pred):.4f}  eta {outlier_fraction(z, pred):.2%}"
                )


if __name__ == "__main__":
    main()
