"""The domain flag on generated galaxies: train an MLP on the paper's selection, predict all.

Draws ``--n`` galaxies (``simulate_catalog``), measures their fluxes as truth plus Gaussian noise
at the expected S/N, trains an MLP on the selected ones (S/N > 10 in g or i) for ``--epochs``,
and predicts every galaxy: sigma_NMAD, outlier fraction and the share of each `DomainFlag` bit
for the selected and the fainter galaxies, and the bytes the domain reference adds to the
checkpoint; writes them to ``benchmarks/results/domain_flag.{json,md}`` (``--out`` elsewhere)::

    python benchmarks/domain_flag.py --n 30000 --epochs 15
"""

import argparse
import datetime
import sys
import tempfile
from pathlib import Path
from typing import Any

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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import cpu_model, write_results


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


def _row(z: np.ndarray, estimate, rows: np.ndarray) -> dict[str, Any]:
    """sigma_NMAD, outliers, the share of each flag bit and the ranges of ``rows``."""
    flags = estimate.flag[rows]
    return {
        "n": int(rows.sum()),
        "sigma_nmad": float(sigma_nmad(z[rows], estimate.z[rows])),
        "outlier_fraction": float(outlier_fraction(z[rows], estimate.z[rows])),
        "flag_shares": {f.name: float(np.mean((flags & f) > 0)) for f in DomainFlag},
        "z_range": [float(estimate.z[rows].min()), float(estimate.z[rows].max())],
        "max_z_err": float(estimate.z_err[rows].max()),
    }


def _markdown(result: dict[str, Any]) -> str:
    bits = [f.name for f in DomainFlag]
    lines = [
        "# The domain flag on generated galaxies",
        "",
        f"`{result['command']}` on {result['cpu']}, {result['date']}: an MLP trained on the "
        f"paper's selection ({result['epochs']} epochs), every galaxy predicted. The domain "
        f"reference adds {result['domain_bytes']} bytes of JSON to a "
        f"{result['checkpoint_bytes']}-byte checkpoint.",
        "",
        "| galaxies | n | sigma_NMAD | outliers | " + " | ".join(bits) + " | z range | max z_err |",
        "|---" * (len(bits) + 6) + "|",
    ]
    for name, row in result["groups"].items():
        shares = " | ".join(f"{100 * row['flag_shares'][b]:.1f} %" for b in bits)
        low, high = row["z_range"]
        lines.append(
            f"| {name} | {row['n']} | {row['sigma_nmad']:.4f} | "
            f"{100 * row['outlier_fraction']:.2f} % | {shares} | {low:.2f} to {high:.2f} | "
            f"{row['max_z_err']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the measurement, write and return the results; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=30000, help="galaxies simulated")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results",
        help="results folder (default benchmarks/results)",
    )  # fmt: skip
    args = parser.parse_args(argv)
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
        checkpoint_bytes = result.paths.best.stat().st_size
    estimate = model.predict(fluxes, errors)
    groups = {"selected": _row(z, estimate, selected)}
    groups["fainter (not selected)"] = _row(z, estimate, ~selected)
    inside = ~selected & (estimate.flag == 0)
    if inside.sum() > 10:
        groups["fainter with flag 0"] = _row(z, estimate, inside)
    command = "python benchmarks/domain_flag.py " + " ".join(sys.argv[1:] if argv is None else argv)
    output = {
        "command": command.strip(),
        "cpu": cpu_model(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "epochs": args.epochs,
        "domain_bytes": len(model.checkpoint_metadata.domain.model_dump_json()),
        "checkpoint_bytes": checkpoint_bytes,
        "groups": groups,
    }
    write_results(args.out, "domain_flag", output, _markdown(output))
    return output


if __name__ == "__main__":
    main()
