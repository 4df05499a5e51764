"""p(z) heads on RAIL's DC2 example data: point estimate with and without them, and their p(z).

The project's MLP is trained three times through ``csst-photoz train mlp --table`` (the
early-stopping recipe, as ``benchmarks/baselines_dc2.py`` runs it) on
``test_dc2_training_9816.hdf5``, with ``training.pz_head`` = ``none``, ``softmax`` and
``mixture``, and tested on ``test_dc2_validation_9816.hdf5``. A fourth network,
``mixture-fit``, is the headless one given a mixture head afterwards by ``csst-photoz pz fit``
(fitted on its frozen last hidden layer: the way a trained checkpoint gains a p(z)). Training
files (checkpoints, states, logs) stay in ``--workdir``, so a rerun resumes or reuses them.

For each network it reports, on the test file:

* the point estimate: sigma_NMAD, outlier fraction (> 0.15), bias, and the largest difference
  of ``z`` from the network without a head (the heads read the detached hidden layer: 0);
* the Gaussian ``z +- sigma`` (calibrated sigma): PIT KS, 68 / 95 % coverage, CRPS;
* the p(z), raw (``uncalibrated``) and recalibrated on the validation split
  (``recalibrated``), and after the catalogue's compact form (100 uint16 quantiles) read
  back on a 400-bin grid (``compact``): PIT KS, coverage of the central 68.27 / 95.45 %
  intervals, CRPS, CDE loss, multi-modal fraction, mean odds;
* the n(z) of tomographic bins on ``z`` (edges ``--tomo``) stacked from the compact p(z):
  mean redshift, true mean, bias ``|<z>_est - <z>_true| / (1 + <z>_true)``, bootstrap error.

Run::

    python benchmarks/pz_heads.py --workdir /work/runs/h17_pz/dc2 --threads 1

It writes ``benchmarks/results/pz_heads.{md,json}`` and ``pz_heads_pit.png`` (PIT
histograms) and ``pz_heads_nz.png`` (n(z) of the chosen head).
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
from baselines_dc2 import BANDS, TEST_FILE, TRAIN_FILE, _data_dir, _write_magnitudes, load_dc2

#: The headless network with a mixture head fitted afterwards on its frozen hidden layer.
FITTED = "mixture-fit"
HEADS = ("none", "softmax", "mixture", FITTED)
COLUMNS = [
    "--bands", ",".join(BANDS), "--flux-columns", "mag_{band}_lsst",
    "--error-columns", "mag_err_{band}_lsst", "--flux-unit", "ABmag",
    "--redshift-column", "redshift", "--id-column", "row",
]  # fmt: skip


def train(work: Path, head: str, threads: int, epochs: int | None) -> Path:
    """Train (or resume, or reuse) the MLP with ``head`` through the command line."""
    from csst_photoz.cli import main as cli

    checkpoint = work / f"mlp_{head}.pt"
    arguments = ["train", "mlp", "--table", str(work / "dc2_train.parquet"), *COLUMNS]
    arguments += ["--recipe", "early-stopping", "--threads", str(threads), "--quiet"]
    arguments += ["--set", f'training.pz_head="{head}"', "--out", str(checkpoint)]
    if epochs is not None:
        arguments += ["--epochs", str(epochs)]
    if cli(arguments) != 0:
        raise RuntimeError(f"csst-photoz {' '.join(arguments)} failed")
    return checkpoint


def fit_head(work: Path, threads: int, epochs: int | None) -> Path:
    """The headless network with a mixture head fitted by ``csst-photoz pz fit`` (or reused)."""
    from csst_photoz.cli import main as cli

    base = train(work, "none", threads, epochs)
    checkpoint = work / f"mlp_{FITTED}.pt"
    if checkpoint.is_file():
        return checkpoint
    arguments = ["pz", "fit", "--checkpoint", str(base), "--data", str(work / "dc2_train.parquet")]
    arguments += ["--out", str(checkpoint), "--threads", str(threads), "--quiet"]
    if cli(arguments) != 0:
        raise RuntimeError(f"csst-photoz {' '.join(arguments)} failed")
    return checkpoint


def predict(checkpoint: Path, test: dict[str, Any], *, recalibrated: bool = True) -> Any:
    """The network and its `PhotoZEstimate` of the test magnitudes (converted as predict does).

    ``recalibrated=False`` removes the p(z) recalibration first (the head's own p(z)).
    """
    import numpy as np

    from csst_photoz.models import load_model
    from csst_photoz.units import convert_fluxes, working_unit

    model = load_model(checkpoint)
    if not recalibrated:
        model.set_pz_calibration(None)
    unit = model.checkpoint_metadata.inputs.fluxes[0].unit
    fluxes, errors = convert_fluxes(
        test["mag"], test["mag_err"], "ABmag", working_unit(unit), bands=model.bands,
        column="mag_u_lsst",
    )  # fmt: skip
    return model, model.predict(fluxes.astype(np.float32), errors.astype(np.float32))


def evaluate(model: Any, estimate: Any, z_true: Any, tomo: list[float]) -> dict[str, Any]:
    """Point, Gaussian, p(z) (raw, recalibrated, compact) and n(z) figures of one network."""
    import numpy as np

    from csst_photoz.metrics import calibration_metrics, point_metrics
    from csst_photoz.metrics.pz import pz_metrics
    from csst_photoz.pz import PzGrid
    from csst_photoz.pz.compact import dense_pz, encode_pz
    from csst_photoz.pz.nz import nz_partial, nz_summary

    point = point_metrics(z_true, estimate.z)
    gauss = calibration_metrics(z_true, estimate.z, estimate.z_err)
    row: dict[str, Any] = {
        "point": {k: float(point[k]) for k in ("sigma_nmad", "outlier_fraction", "bias")},
        "gaussian": {k: float(gauss[k]) for k in ("pit_ks", "coverage_68", "coverage_95", "crps")},
    }
    if estimate.pz is None:
        return row
    grid = estimate.pz_grid
    calibration = model.pz_calibration
    if calibration is not None:
        row["pz_recalibrated"] = pz_metrics(estimate.pz, grid, z_true)
    codes = encode_pz(estimate.pz, grid)
    fine = PzGrid(0.0, 4.0, 400)
    row["pz_compact"] = pz_metrics(dense_pz(codes, fine.edges), fine, z_true)
    row["calibration"] = None if calibration is None else {
        "galaxies": calibration.galaxies, "knots": len(calibration.levels),
        "validation_pit_ks_before": calibration.pit_ks_before,
        "validation_pit_ks_after": calibration.pit_ks_after,
    }  # fmt: skip
    sums = nz_partial(
        estimate.z.astype(np.float64), codes, np.arange(z_true.size), tomo_edges=tomo,
        grid_edges=fine.edges, replicates=50, seed=0, z_true=z_true,
    )  # fmt: skip
    summary = nz_summary(sums)
    row["nz"] = {k: [float(v) for v in values] for k, values in summary.items()}
    row["_sums"] = sums
    return row


def _markdown(result: dict[str, Any]) -> str:
    lines = [
        "# p(z) heads of the MLP on RAIL's DC2 example data",
        "",
        f"Train `{TRAIN_FILE}` ({result['n_train']} rows), test `{TEST_FILE}` "
        f"({result['n_test']} rows); `{result['command']}` on {result['cpu']}, "
        f"{result['date']}. Early-stopping recipe, same seed for every network.",
        "",
        "## Point estimate (test file)",
        "",
        "| head | sigma_NMAD | outliers | bias | max abs z difference to none | epochs (best) |",
        "|---|---|---|---|---|---|",
    ]
    for head, row in result["heads"].items():
        lines.append(
            f"| {head} | {point_cells(row['point'])} | {row['max_abs_dz_to_none']:.2g} | "
            f"{row['epochs']} ({row['best_epoch']}) |"
        )
    lines += ["", "## Distributions (test file)", "", *DISTRIBUTION_HEADER]
    for head, row in result["heads"].items():
        lines.append(distribution_row(head, "Gaussian (calibrated sigma)", row["gaussian"]))
        for form in ("pz_uncalibrated", "pz_recalibrated", "pz_compact"):
            if form in row:
                lines.append(distribution_row(head, f"{form[3:]} p(z)", row[form]))
    lines += [
        "",
        "Coverage: central 68.27 / 95.45 % intervals (p(z)) or +-1 / 2 sigma (Gaussian). "
        "compact: the catalogue's 100 uint16 quantiles (200 bytes) read back on 400 bins.",
        "",
        "## n(z) per tomographic bin (compact p(z) stacked, bins on z)",
        "",
        "| head | bin | galaxies | <z> est | +- (bootstrap) | <z> true | bias |",
        "|---|---|---|---|---|---|---|",
    ]
    for head, row in result["heads"].items():
        if "nz" in row:
            lines += nz_rows(row["nz"], prefix=f"{head} | ")
    lines += ["", f"Chosen default: **{result['chosen']}** ({result['why']})"]
    return "\n".join(lines) + "\n"


def _pit_figure(rows: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(rows), figsize=(4 * len(rows), 3.2), squeeze=False)
    for axis, (head, row) in zip(axes[0], rows.items(), strict=True):
        for label, pit in row["_pit"].items():
            axis.hist(pit, bins=40, range=(0, 1), density=True, histtype="step", label=label)
        axis.axhline(1.0, color="k", lw=0.8)
        axis.set_title(head)
        axis.set_xlabel("PIT")
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the comparison; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True, help="training files go here")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    parser.add_argument("--epochs", type=int, default=None, help="cap on the epochs")
    parser.add_argument("--heads", default=",".join(HEADS), help="heads, comma-separated")
    parser.add_argument(
        "--tomo", default="0,0.4,0.8,1.2,1.6,2.2,3.0", help="tomographic edges on z"
    )
    parser.add_argument("--rows", type=int, default=None, help="first N rows of each file")
    parser.add_argument("--data-dir", type=Path, default=None, help="folder of the DC2 files")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results",
        help="results folder (default benchmarks/results)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    pin_threads(args.threads)
    import numpy as np

    from csst_photoz.metrics import pit_values
    from csst_photoz.metrics.pz import pz_metrics, pz_pit
    from csst_photoz.models.checkpoint import read_metadata
    from csst_photoz.pz.nz_plot import plot_nz
    from csst_photoz.training.log import read_log

    folder = args.data_dir or _data_dir()
    train_data, test = (load_dc2(folder / name, args.rows) for name in (TRAIN_FILE, TEST_FILE))
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "dc2_train.parquet").is_file():
        _write_magnitudes(work / "dc2_train.parquet", train_data)
    tomo = [float(x) for x in args.tomo.split(",")]
    rows: dict[str, dict[str, Any]] = {}
    z_none = None
    for head in args.heads.split(","):
        if head == FITTED:
            checkpoint = fit_head(work, args.threads, args.epochs)
            trained = work / "mlp_none.pt"
        else:
            checkpoint = trained = train(work, head, args.threads, args.epochs)
        model, estimate = predict(checkpoint, test)
        row = evaluate(model, estimate, test["z"], tomo)
        log = read_log(trained.with_suffix(".log.jsonl"))
        row["epochs"] = len(log)
        row["best_epoch"] = read_metadata(trained).validation_metrics["epoch"]
        row["_pit"] = {"Gaussian": pit_values(test["z"], estimate.z, estimate.z_err)}
        if estimate.pz is not None:
            row["_pit"]["p(z)"] = pz_pit(estimate.pz, estimate.pz_grid, test["z"])
            _, uncalibrated = predict(checkpoint, test, recalibrated=False)
            row["pz_uncalibrated"] = pz_metrics(uncalibrated.pz, uncalibrated.pz_grid, test["z"])
            row["_pit"]["p(z) raw"] = pz_pit(uncalibrated.pz, uncalibrated.pz_grid, test["z"])
        if head == "none":
            z_none = estimate.z
        row["max_abs_dz_to_none"] = (
            float(np.max(np.abs(estimate.z - z_none))) if z_none is not None else float("nan")
        )
        rows[head] = row
        print(head, {k: v for k, v in row.items() if not k.startswith("_")}, flush=True)
    with_pz = [h for h in rows if "pz_compact" in rows[h]]
    chosen = min(with_pz, key=lambda h: rows[h]["pz_compact"]["crps"]) if with_pz else "none"
    why = "lowest CRPS of the catalogue's p(z) on the test file" if with_pz else "no p(z) head"
    args.out.mkdir(parents=True, exist_ok=True)
    _pit_figure(rows, args.out / "pz_heads_pit.png")
    if chosen in rows and "_sums" in rows[chosen]:
        title = f"DC2 test file, MLP {chosen} p(z): stacked (lines), truth (dotted)"
        plot_nz(rows[chosen]["_sums"], args.out / "pz_heads_nz.png", title=title)
    result = {
        "command": "python benchmarks/pz_heads.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "cpu": cpu_model(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "n_train": int(train_data["z"].size),
        "n_test": int(test["z"].size),
        "chosen": chosen,
        "why": why,
        "heads": {
            h: {k: v for k, v in r.items() if not k.startswith("_")} for h, r in rows.items()
        },
    }
    write_results(args.out, "pz_heads", result, _markdown(result))
    return result


if __name__ == "__main__":
    main()
