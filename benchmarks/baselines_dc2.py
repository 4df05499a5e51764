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

* ``mlp`` (``--recipe early-stopping``, the default of ``--table``) and ``mlp-paper``
  (``--recipe paper``: 150 epochs, keeping the best): the project's MLP **through the command
  line, with its defaults**, as a user runs it on the two files written as Parquet tables of
  magnitudes (99 = missing, RAIL's non-detections)::

      csst-photoz train mlp --table dc2_train.parquet --bands u,g,r,i,z,y \
          --flux-columns 'mag_{band}_lsst' --error-columns 'mag_err_{band}_lsst' \
          --flux-unit ABmag --redshift-column redshift --id-column row --out mlp.pt
      csst-photoz predict --checkpoint mlp.pt --table dc2_test.parquet --out photoz.parquet

  (``--table`` holds no test rows back: 90 % train, 10 % validation);
* ``gbr`` / ``knn``: `csst_photoz.evaluation.baselines` (tuned on their own 20 % validation
  part of the training file; see that module), on the fluxes above (a non-detection, ``F = 0``,
  is a missing band for them too).

Run::

    python benchmarks/baselines_dc2.py --threads 2

It prints a table of sigma_NMAD, outlier fraction (``|dz| / (1 + z) > 0.15``) and bias on the
test file and writes ``benchmarks/results/baselines_dc2.{md,json}``. ``--recipe`` picks one MLP
recipe (default both), ``--epochs N`` caps the MLP's epochs, ``--rows N`` uses the first N rows of
each file and ``--data-dir`` another folder with the two files (the smoke test).
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


def _write_magnitudes(path: Path, data: dict[str, Any]) -> None:
    """The DC2 columns as a Parquet table, as a user would hand them to ``csst-photoz``."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {"row": pa.array(np.arange(data["z"].size)), "redshift": pa.array(data["z"])}
    for k, band in enumerate(BANDS):
        columns[f"mag_{band}_lsst"] = pa.array(data["mag"][:, k])
        columns[f"mag_err_{band}_lsst"] = pa.array(data["mag_err"][:, k])
    pq.write_table(pa.table(columns), path)


def mlp_through_cli(
    train: Path, test: Path, work: Path, recipe: str, epochs: int | None, threads: int
) -> tuple[Any, Any, dict[str, Any]]:
    """Train the MLP on ``train`` and predict ``test`` with ``csst-photoz`` as a user runs it.

    Returns the test rows' ``z``, ``z_err`` (in the test file's row order) and a record of the
    run (epochs, best epoch, seconds). A training state left in ``work`` is resumed.
    """
    import numpy as np
    import pyarrow.parquet as pq

    from csst_photoz.cli import main as cli
    from csst_photoz.models.checkpoint import read_metadata
    from csst_photoz.training.log import read_log

    checkpoint = work / f"mlp_{recipe}.pt"
    columns = [
        "--bands", ",".join(BANDS), "--flux-columns", "mag_{band}_lsst",
        "--error-columns", "mag_err_{band}_lsst", "--flux-unit", "ABmag",
        "--redshift-column", "redshift", "--id-column", "row",
    ]  # fmt: skip
    train_args = ["train", "mlp", "--table", str(train), *columns, "--recipe", recipe]
    train_args += ["--threads", str(threads), "--quiet", "--out", str(checkpoint)]
    if epochs is not None:
        train_args += ["--epochs", str(epochs)]
    if cli(train_args) != 0:
        raise RuntimeError(f"csst-photoz {' '.join(train_args)} failed")
    predictions = work / f"photoz_{recipe}.parquet"
    predict_args = ["predict", "--checkpoint", str(checkpoint), "--table", str(test)]
    if cli([*predict_args, "--out", str(predictions)]) != 0:
        raise RuntimeError(f"csst-photoz {' '.join(predict_args)} failed")
    table = pq.read_table(predictions).to_pydict()
    order = np.argsort(np.asarray(table["row"]))
    epochs_run = read_log(checkpoint.with_suffix(".log.jsonl"))
    run = {
        "epochs": len(epochs_run),
        "best_epoch": read_metadata(checkpoint).validation_metrics["epoch"],
        "seconds": round(sum(record["seconds"] for record in epochs_run), 1),
    }
    return np.asarray(table["z_mlp"])[order], np.asarray(table["z_mlp_err"])[order], run


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
    parser.add_argument(
        "--epochs", type=int, default=None, help="cap on the MLP's epochs (default: the recipe's)"
    )
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument(
        "--recipe", choices=("early-stopping", "paper"), action="append", default=None,
        help="MLP recipe (repeatable; default both)",
    )  # fmt: skip
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

    from csst_photoz.evaluation.baselines import GradientBoostingBaseline, KNNBaseline

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
            _write_magnitudes(work / "dc2_train.parquet", train)
            _write_magnitudes(work / "dc2_test.parquet", test)
            for recipe in args.recipe or ["early-stopping", "paper"]:
                name = "mlp" if recipe == "early-stopping" else "mlp-paper"
                z, sigma, run = mlp_through_cli(
                    work / "dc2_train.parquet", work / "dc2_test.parquet", work,
                    recipe, args.epochs, args.threads,
                )  # fmt: skip
                methods[name] = {**_metrics(test["z"], z, sigma), "seconds": run["seconds"]}
                settings[name] = (
                    f"{run['epochs']} epochs (best {run['best_epoch']}), csst-photoz CLI "
                    f"defaults, --recipe {recipe}"
                )
                print(f"{name}: {methods[name]}", flush=True)

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
