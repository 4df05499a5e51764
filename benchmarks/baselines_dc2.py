"""The tuned baselines against the project's MLP on RAIL's DC2 example data.

Data: the two small DC2 files shipped in the ``pz-rail-base`` wheel
(``rail/examples_data/testdata/``): ``test_dc2_training_9816.hdf5`` trains every method,
``test_dc2_validation_9816.hdf5`` tests it. Columns ``mag_<b>_lsst``, ``mag_err_<b>_lsst``
(``b`` in ugrizy) and ``redshift``; a magnitude of 99 is a non-detection, whose error column
holds the band's 1-sigma limiting magnitude (RAIL's convention).

Fluxes in nJy: ``F = 10**(-0.4 * (m - 31.4))``, error ``F * ln(10) / 2.5 * mag_err``; a
non-detection becomes ``F = 0`` with the 1-sigma limit ``10**(-0.4 * (m_lim - 31.4))`` as its
error (the MLP needs finite inputs; the baselines read ``F <= 0`` as a missing band).

Methods, all fitted on the training file only:

* ``mlp``: `csst_photoz.training.train_model` (defaults, ``test_fraction=0`` so every training
  row is used: 90 % train, 10 % validation) for ``--epochs`` epochs on ``--threads`` threads;
* ``gbr`` / ``knn``: `csst_photoz.evaluation.baselines` (tuned on their own 20 % validation
  part of the training file; see that module).

Run::

    python benchmarks/baselines_dc2.py --epochs 20 --threads 2

It prints a table of sigma_NMAD, outlier fraction (``|dz| / (1 + z) > 0.15``) and bias on the
test file and writes ``benchmarks/results/baselines_dc2.{md,json}``. ``--rows N`` uses the first
N rows of each file and ``--data-dir`` another folder with the two files (the smoke test).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import cpu_model, pin_threads, write_results

__all__ = ["dc2_fluxes", "load_dc2", "main"]

BANDS = ("u", "g", "r", "i", "z", "y")
TRAIN_FILE = "test_dc2_training_9816.hdf5"
TEST_FILE = "test_dc2_validation_9816.hdf5"
#: AB zero point of nJy.
NJY_ZERO_POINT = 31.4
NON_DETECTION = 99.0


def _data_dir() -> Path:
    import rail

    for root in rail.__path__:
        folder = Path(root) / "examples_data" / "testdata"
        if (folder / TRAIN_FILE).is_file():
            return folder
    raise FileNotFoundError(
        f"{TRAIN_FILE} not found under rail/examples_data/testdata; pip install pz-rail-base"
    )


def load_dc2(path: Path, rows: int | None = None) -> dict[str, Any]:
    """Magnitudes, their errors (``(n, 6)``, ugrizy) and redshifts of one RAIL DC2 file."""
    import h5py
    import numpy as np

    with h5py.File(path, "r") as handle:
        group = handle["photometry"]
        end = rows if rows is not None else group["redshift"].shape[0]
        mag = np.stack([group[f"mag_{b}_lsst"][:end] for b in BANDS], axis=1)
        mag_err = np.stack([group[f"mag_err_{b}_lsst"][:end] for b in BANDS], axis=1)
        redshift = np.asarray(group["redshift"][:end], dtype=np.float64)
    return {"mag": mag.astype(np.float64), "mag_err": mag_err.astype(np.float64), "z": redshift}


def dc2_fluxes(mag: Any, mag_err: Any) -> tuple[Any, Any]:
    """nJy fluxes and errors from AB magnitudes; a non-detection (99) is ``0 +- 1-sigma limit``."""
    import numpy as np

    detected = mag < NON_DETECTION
    flux = np.where(detected, 10.0 ** (-0.4 * (mag - NJY_ZERO_POINT)), 0.0)
    limit = 10.0 ** (-0.4 * (mag_err - NJY_ZERO_POINT))
    error = np.where(detected, flux * np.log(10.0) / 2.5 * mag_err, limit)
    return flux, error


def _write_parquet(path: Path, flux: Any, error: Any, z: Any) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {"redshift": pa.array(z)}
    for k, band in enumerate(BANDS):
        columns[f"flux_{band}"] = pa.array(flux[:, k])
        columns[f"flux_err_{band}"] = pa.array(error[:, k])
    pq.write_table(pa.table(columns), path)


def train_mlp(table: Path, out: Path, epochs: int) -> dict[str, Any]:
    """Train the project's MLP on ``table`` (all rows: ``test_fraction=0``) into ``out``.

    A training state beside ``out`` (``--workdir`` of an interrupted run) is resumed.
    """
    from csst_photoz.training import TrainingConfig, train_model
    from csst_photoz.training.config import DataColumns

    config = TrainingConfig(
        test_fraction=0.0,
        max_epochs=epochs,
        progress=False,
        columns=DataColumns(bands=BANDS, flux="flux_{band}", flux_err="flux_err_{band}"),
    )
    result = train_model("mlp", table, config, out, device="cpu")
    return {
        "epochs": result.epochs_completed,
        "best_epoch": result.best_epoch,
        # summed from the log, so that a run resumed from ``out``'s state counts all epochs
        "seconds": round(sum(record["seconds"] for record in result.history), 1),
    }


def _metrics(z_true: Any, z_pred: Any, sigma: Any) -> dict[str, float]:
    import numpy as np

    from csst_photoz.metrics import calibration_metrics, point_metrics

    point = point_metrics(z_true, z_pred)
    return {
        "sigma_nmad": float(point["sigma_nmad"]),
        "outlier_fraction": float(point["outlier_fraction"]),
        "bias": float(point["bias"]),
        "coverage_68": float(calibration_metrics(z_true, z_pred, sigma)["coverage_68"]),
        "n": int(np.isfinite(z_pred).sum()),
    }


def _markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Tuned baselines vs the MLP on RAIL's DC2 example data",
        "",
        f"Train `{TRAIN_FILE}` ({result['n_train']} rows), test `{TEST_FILE}` "
        f"({result['n_test']} rows); {result['command']}",
        f"on {result['cpu']}, {result['threads']} threads, {result['date']}.",
        "",
        "| method | sigma_NMAD | outliers (>0.15) | bias | 68 % coverage | fit [s] |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in result["methods"].items():
        lines.append(
            f"| {name} | {row['sigma_nmad']:.4f} | {100 * row['outlier_fraction']:.2f} % | "
            f"{row['bias']:+.4f} | {100 * row['coverage_68']:.1f} % | {row['seconds']:.0f} |"
        )
    lines += ["", "Settings: " + ", ".join(f"{k}: {v}" for k, v in result["settings"].items())]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the comparison; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20, help="MLP epochs (default 20)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument("--rows", type=int, default=None, help="first N rows of each file")
    parser.add_argument("--no-mlp", action="store_true", help="baselines only")
    parser.add_argument(
        "--data-dir", type=Path, default=None,
        help="folder with the two DC2 files (default: the pz-rail-base wheel's testdata)",
    )  # fmt: skip
    parser.add_argument("--workdir", type=Path, default=None, help="keep the MLP's files here")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results",
        help="results folder (default benchmarks/results)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    pin_threads(args.threads)

    import numpy as np
    import torch

    from csst_photoz.evaluation.baselines import GradientBoostingBaseline, KNNBaseline
    from csst_photoz.models.checkpoint import load_model

    torch.set_num_threads(args.threads)
    folder = args.data_dir or _data_dir()
    train, test = (load_dc2(folder / name, args.rows) for name in (TRAIN_FILE, TEST_FILE))
    train_flux, train_err = dc2_fluxes(train["mag"], train["mag_err"])
    test_flux, test_err = dc2_fluxes(test["mag"], test["mag_err"])

    methods: dict[str, dict[str, Any]] = {}
    settings: dict[str, Any] = {}
    for model in (
        GradientBoostingBaseline(seed=0, n_threads=args.threads),
        KNNBaseline(seed=0, n_threads=args.threads),
    ):
        start = time.perf_counter()
        model.fit(train_flux, train_err, train["z"])
        seconds = time.perf_counter() - start
        z, sigma = model.predict(test_flux, test_err)
        methods[model.name] = {**_metrics(test["z"], z, sigma), "seconds": seconds}
        settings[model.name] = model.describe()
        print(f"{model.name}: {methods[model.name]}", flush=True)

    if not args.no_mlp:
        with tempfile.TemporaryDirectory() as scratch:
            work = args.workdir or Path(scratch)
            work.mkdir(parents=True, exist_ok=True)
            table = work / "dc2_train.parquet"
            _write_parquet(table, train_flux, train_err, train["z"])
            checkpoint = work / "mlp_dc2.pt"
            run = train_mlp(table, checkpoint, args.epochs)
            estimate = load_model(checkpoint).predict(test_flux, test_err)
            z, sigma = np.asarray(estimate.z), np.asarray(estimate.z_err)
            methods["mlp"] = {**_metrics(test["z"], z, sigma), "seconds": run["seconds"]}
            settings["mlp"] = f"{run['epochs']} epochs (best {run['best_epoch']}), defaults"

    command = "`python benchmarks/baselines_dc2.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    result = {
        "command": command.rstrip() + "`",
        "cpu": cpu_model(),
        "threads": args.threads,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average": os.getloadavg()[0],
        "n_train": int(train["z"].size),
        "n_test": int(test["z"].size),
        "methods": methods,
        "settings": settings,
    }
    write_results(args.out, "baselines_dc2", result, _markdown(result))
    return result


if __name__ == "__main__":
    main()
