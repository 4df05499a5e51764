"""The domain flag on generated galaxies: train an MLP on the paper's selection, predict all.

Draws ``--n`` galaxies (``simulate_catalog``), measures their fluxes as truth plus Gaussian noise
at the expected S/N, trains an MLP on the selected ones (S/N > 10 in g or i) for ``--epochs``,
and predicts every galaxy: sigma_NMAD, outlier fraction and the share of each `DomainFlag` bit
for the selected and the fainter galaxies, and the bytes the domain reference adds to the
checkpoint. ::

    python benchmarks/domain_flag.py --n 30000 --epochs 15
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from csst_photoz.constants import CSST_BANDS
from csst_photoz.metrics import outlier_fraction, sigma_nmad
from csst_photoz.models import load_model
from csst_photoz.models.domain import DomainFlag
from csst_photoz.sim.catalog import simulate_catalog
from csst_photoz.sim.selection import select_snr
from csst_photoz.training import DataColumns, TrainingConfig, train_model


def _measured(truth: pa.Table, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    snr = {b: truth[f"snr_{b}"].to_numpy() for b in CSST_BANDS}
    fluxes, errors = [], []
    for band in CSST_BANDS:
        flux = truth[f"flux_{band}"].to_numpy()
        error = flux / np.maximum(snr[band], 1e-3)
        fluxes.append(flux + rng.normal(0.0, 1.0, flux.size) * error)
        errors.append(error)
    return np.stack(fluxes, 1), np.stack(errors, 1), select_snr(snr)


def _report(name: str, z: np.ndarray, estimate, rows: np.ndarray) -> None:
    flags = estimate.flag[rows]
    shares = ", ".join(f"{f.name} {np.mean((flags & f) > 0):.1%}" for f in DomainFlag)
    print(
        f"{name}: n={rows.sum()} sigma_NMAD {sigma_nmad(z[rows], estimate.z[rows]):.4f} "
        f"eta {outlier_fraction(z[rows], estimate.z[rows]):.2%}; {shares}; z in "
        f"[{estimate.z[rows].min():.2f}, {estimate.z[rows].max():.2f}], "
        f"max z_err {estimate.z_err[rows].max():.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=30000)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    truth = simulate_catalog(args.n, seed=args.seed)
    fluxes, errors, selected = _measured(truth, args.seed + 1)
    z = truth["redshift"].to_numpy()
    columns = {"redshift": z[selected]}
    for k, band in enumerate(CSST_BANDS):
        columns[f"f_{band}"], columns[f"e_{band}"] = fluxes[selected, k], errors[selected, k]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.parquet"
        pq.write_table(pa.table(columns), path)
        names = DataColumns(bands=CSST_BANDS, flux="f_{band}", flux_err="e_{band}")
        config = TrainingConfig(
            seed=3, columns=names.model_dump(), max_epochs=args.epochs, flux_realisations=5,
            learning_rate=1e-3, batch_size=256, progress=False,
        )  # fmt: skip
        result = train_model("mlp", path, config, Path(tmp) / "mlp.pt")
        model = load_model(result.paths.best)
        domain_bytes = len(model.checkpoint_metadata.domain.model_dump_json())
        print(f"domain reference: {domain_bytes} bytes of JSON in a "
              f"{result.paths.best.stat().st_size}-byte checkpoint")  # fmt: skip
    estimate = model.predict(fluxes, errors)
    _report("selected", z, estimate, selected)
    _report("fainter (not selected)", z, estimate, ~selected)
    inside = ~selected & (estimate.flag == 0)
    if inside.sum() > 10:
        _report("fainter with flag 0", z, estimate, inside)


if __name__ == "__main__":
    main()
