"""Predictions of trained checkpoints on a split of their training set, for ``evaluate``.

`predict_split` loads one or more checkpoints written by `~csst_photoz.training.train_model`,
reloads the training-set folder they were trained on, redraws their train / validation / test
split from the seed and fractions recorded in each checkpoint, and predicts the chosen split's
galaxies that pass the training selection. Every checkpoint must come from the same data (its
recorded data hash) and the same split (the recomputed split's SHA-256 equals the recorded one,
and all checkpoints agree; :mod:`.checkpoint_data`); anything else is refused with a
`PredictionError` naming the file.
Stamp networks get the stamps centre-cropped to the size they were trained with. The scikit-
learn baselines (:func:`~csst_photoz.evaluation.fit_predict_baselines`) are fitted on the same
training rows, so every column of the table is evaluated on one test set.

The result is the prediction table ``csst-photoz evaluate`` reads
(:mod:`csst_photoz.evaluation.columns`): ``row`` (the table row), ``redshift`` (the truth),
``galaxy_id`` and ``mag_i`` when the table has them, and per model ``z_<name>`` and
``z_<name>_err``, where ``name`` is the network's variant (``mlp``, ``cnn``, ``hybrid``,
``hybrid_transfer``; ``mlp_2``, ... for repeats) or the baseline (``knn``, ``gbr``). The schema
metadata key ``csst_photoz.predictions`` holds a JSON record of the checkpoints (path, name,
variant, ``state_dict_sha256``), the data, the split and the baselines.

`predict_table` applies flux networks to *any* table (Parquet, FITS or CSV) that has the
columns a checkpoint declares, or the same quantities under other names (``flux_columns``,
``error_columns``) or in another unit it knows (``flux_unit``, else the columns' own unit
metadata, else the declared unit): electrons, nJy (and other flux densities) and AB
magnitudes are converted to the network's unit (:mod:`csst_photoz.units`); other units are
refused naming the column. It writes the table's id column (``id_column``, else the one
recorded at training, else ``galaxy_id``, else ``row``), the true redshift when asked, and per
model ``z_<name>`` and ``z_<name>_err`` (and ``z_<name>_flag`` where the model gives one).

::

    csst-photoz predict --checkpoint mlp.pt [--checkpoint cnn.pt ...] --data DIR
        --out predictions.parquet [--split test|validation] [--no-baselines] [--threads N]
    csst-photoz predict --checkpoint mlp.pt --table FILE --out predictions.parquet
        [--id-column ID] [--flux-columns T --error-columns T] [--flux-unit U]
        [--redshift-column Z]
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..cli_options import positive_int
from ..pz.columns import photoz_columns
from ..threads import limit_threads
from .checkpoint_data import (
    LoadedCheckpoint,
    PredictionError,
    check_split,
    column_name,
    columns_of,
    load_checkpoints,
    stamps_for,
)

__all__ = [
    "METADATA_KEY",
    "PredictionError",
    "add_predict_arguments",
    "main",
    "predict_split",
    "predict_table",
]

#: Schema-metadata key of the JSON record written with the predictions.
METADATA_KEY = b"csst_photoz.predictions"
_SPLITS = ("test", "validation")
_EXTRA_COLUMNS = ("galaxy_id", "mag_i")


def predict_split(
    checkpoints: Sequence[str | os.PathLike[str]],
    data: str | os.PathLike[str],
    *,
    split: str = "test",
    baselines: Sequence[str] = ("knn", "gbr"),
    batch_size: int = 4096,
    n_threads: int | None = 1,
) -> pa.Table:
    """Predict a split of a training set with trained checkpoints and the baselines.

    Parameters
    ----------
    checkpoints
        Checkpoint files written by ``train_model`` on ``data`` with one split.
    data
        The training-set folder (or Parquet file, for flux-only networks) they were trained on.
    split
        ``"test"`` or ``"validation"``.
    baselines
        Baselines to fit on the split's training rows (`BASELINES` keys); ``()`` for none.
    batch_size
        Rows per forward pass.
    n_threads
        Torch and baseline threads during the call (None: leave as they are).

    Returns
    -------
    pyarrow.Table
        One row per galaxy of the split that passes the selection, in table-row order:
        ``row``, ``redshift``, ``galaxy_id`` / ``mag_i`` if present, ``z_<name>``,
        ``z_<name>_err``; schema metadata `METADATA_KEY`.

    Raises
    ------
    PredictionError
        On checkpoints of other data, another split, other columns or bands, or without
        training records.
    """
    from ..io.paths import TABLE_FILE
    from .data import load_training_set

    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    loaded = load_checkpoints(checkpoints)
    columns = columns_of(loaded)
    dataset = load_training_set(data, columns=columns, stamps=False)
    for item in loaded:
        if tuple(item.model.bands) != tuple(dataset.bands):
            raise PredictionError(
                f"{item.path}: bands {list(item.model.bands)} differ from the data's "
                f"{list(dataset.bands)}"
            )
    rows = check_split(loaded, dataset)
    train = dataset.positions(rows.train)
    chosen = dataset.positions(getattr(rows, split))
    if chosen.size == 0:
        raise PredictionError(f"{dataset.source}: no selected galaxy in the {split} split")
    table_rows = dataset.rows[chosen]

    table_path = dataset.source / TABLE_FILE if dataset.source.is_dir() else dataset.source
    present = pq.read_schema(table_path).names
    extra = [c for c in _EXTRA_COLUMNS if c in present]
    read = pq.read_table(table_path, columns=[columns.redshift, *extra])
    out: dict[str, Any] = {"row": pa.array(table_rows, pa.int64())}
    truth = np.asarray(read[columns.redshift].to_numpy(zero_copy_only=False), np.float64)
    out["redshift"] = pa.array(truth[table_rows], pa.float64())
    for name in extra:
        out[name] = read[name].take(pa.array(table_rows))

    fluxes, errors = dataset.fluxes[chosen], dataset.flux_errors[chosen]
    stamp_cache: dict[int, Any] = {}
    with limit_threads(n_threads):
        for item in loaded:
            stamps = None
            if "stamps" in item.model.input_names:
                stamps = stamps_for(item, dataset, table_rows, stamp_cache)
            estimate = item.model.predict(fluxes, errors, stamps, batch_size=batch_size)
            out[f"z_{item.name}"] = pa.array(estimate.z, pa.float32())
            out[f"z_{item.name}_err"] = pa.array(estimate.z_err, pa.float32())
            out[f"z_{item.name}_flag"] = pa.array(estimate.flag, pa.uint16())
            for field, values in photoz_columns(estimate, item.name):
                out[field.name] = values
    stamp_cache.clear()

    taken = {item.name for item in loaded} | {"true"}
    baseline_names = {}
    if baselines:
        from csst_photoz.evaluation.baselines import fit_predict_baselines

        fitted = fit_predict_baselines(
            dataset.fluxes[train], dataset.flux_errors[train], dataset.redshift[train],
            fluxes, errors, names=tuple(baselines), n_threads=n_threads,
        )  # fmt: skip
        for name, (z, sigma) in fitted.items():
            column = column_name(name, taken)
            baseline_names[name] = column
            out[f"z_{column}"] = pa.array(np.asarray(z, np.float32), pa.float32())
            out[f"z_{column}_err"] = pa.array(np.asarray(sigma, np.float32), pa.float32())

    record = {
        "checkpoints": [
            {
                "path": str(item.path),
                "name": item.name,
                "variant": str(item.model.variant),
                "architecture": item.model.architecture,
                "state_dict_sha256": item.metadata.state_dict_sha256,
            }
            for item in loaded
        ],
        "data": str(dataset.source),
        "data_hash": dataset.data_hash,
        "split": split,
        "split_seed": rows.seed,
        "split_sha256": rows.fingerprint(),
        "n_train": int(train.size),
        "n_rows": int(chosen.size),
        "baselines": baseline_names,
    }
    result = pa.table(out)
    return result.replace_schema_metadata({METADATA_KEY: json.dumps(record).encode()})


def _table_inputs(
    item: LoadedCheckpoint, flux_columns: Any, error_columns: Any, flux_unit: str | None
) -> tuple[list[str], list[str], str | None, str]:
    """Flux and error columns to read for ``item``, the unit asked for and the declared one."""
    from .config import DataColumns

    declared = item.metadata.inputs
    if not declared.fluxes or declared.stamps is not None:
        raise PredictionError(
            f"{item.path}: a {item.model.variant} network reads stamps; predict --table "
            "applies flux-only networks (MLP)"
        )
    units = {entry.unit for entry in declared.fluxes}
    if len(units) != 1:
        raise PredictionError(f"{item.path}: declares flux inputs in several units {units}")
    bands = tuple(declared.flux_bands)
    given = DataColumns(
        flux=flux_columns if flux_columns is not None else declared.flux_columns,
        flux_err=error_columns if error_columns is not None else declared.error_columns,
    )
    return given.flux_columns(bands), given.error_columns(bands), flux_unit, units.pop()


def predict_table(
    checkpoints: Sequence[str | os.PathLike[str]],
    table: str | os.PathLike[str],
    *,
    flux_columns: str | Sequence[str] | None = None,
    error_columns: str | Sequence[str] | None = None,
    flux_unit: str | None = None,
    id_column: str | None = None,
    redshift_column: str | None = None,
    batch_size: int = 4096,
    n_threads: int | None = 1,
) -> pa.Table:
    """Predict every row of any table with flux-only checkpoints (no split, no data hash).

    Parameters
    ----------
    checkpoints
        Flux-only checkpoint files (the MLP).
    table
        A Parquet, FITS or CSV file (:func:`csst_photoz.io.tables.read_columns`).
    flux_columns, error_columns
        The table's flux and error columns: a ``{band}`` template or one name per band of the
        checkpoints (default: the columns each checkpoint declares).
    flux_unit
        Their unit (default: the columns' unit metadata, else the unit each checkpoint
        declares); converted to the network's (:func:`csst_photoz.units.convert_fluxes`).
    id_column
        Identifier column to copy (default: the one recorded at training, else ``galaxy_id``
        when present, else the row number as ``row``).
    redshift_column
        True-redshift column to copy as ``redshift`` (for ``csst-photoz evaluate``).
    batch_size
        Rows per forward pass.
    n_threads
        Torch threads during the call (None: leave as they are).

    Returns
    -------
    pyarrow.Table
        One row per table row: the id column, ``redshift`` if asked, ``z_<name>``,
        ``z_<name>_err`` (and ``z_<name>_flag`` from models that give one); schema metadata
        `METADATA_KEY`.

    Raises
    ------
    PredictionError
        On stamp networks, a missing column, or a unit that is unknown or cannot be converted
        (naming the file and the column).
    """
    from csst_photoz.io.tables import TableReadError, read_columns
    from csst_photoz.models.checkpoint import load_model
    from csst_photoz.units import UnitError, convert_fluxes, working_unit

    from .data import resolve_flux_unit

    path = Path(table)
    if not checkpoints:
        raise ValueError("predict needs at least one checkpoint")
    loaded, taken = [], {"true"}
    for entry in checkpoints:
        model = load_model(entry)
        metadata = model.checkpoint_metadata
        name = column_name(str(model.variant), taken)
        loaded.append(LoadedCheckpoint(Path(entry), model, metadata, metadata.training, name))
    plans = [_table_inputs(item, flux_columns, error_columns, flux_unit) for item in loaded]
    recorded = [(item.training.config.get("columns") or {}).get("id") for item in loaded]
    wanted_id = id_column or next((c for c in recorded if c), None)
    names = [name for fluxes, errors, _, _ in plans for name in (*fluxes, *errors)]
    names += [c for c in (wanted_id, redshift_column) if c]
    try:
        read = read_columns(path, list(dict.fromkeys(names)), optional=["galaxy_id"])
    except TableReadError as error:
        raise PredictionError(str(error)) from None

    out: dict[str, Any] = {}
    id_name = wanted_id or ("galaxy_id" if "galaxy_id" in read.values else None)
    if id_name is None:
        out["row"] = pa.array(np.arange(read.n_rows), pa.int64())
    else:
        out[id_name] = pa.array(read[id_name])
    if redshift_column:
        out["redshift"] = pa.array(np.asarray(read[redshift_column], np.float64))
    records = []
    with limit_threads(n_threads):
        for item, (fluxes, errors, asked, declared) in zip(loaded, plans, strict=True):
            try:
                unit = resolve_flux_unit(asked, read.units, fluxes, path, default=declared)
                values, sigmas = convert_fluxes(
                    np.column_stack([np.asarray(read[c], np.float64) for c in fluxes]),
                    np.column_stack([np.asarray(read[c], np.float64) for c in errors]),
                    unit, working_unit(declared), bands=item.model.bands, column=fluxes[0],
                )  # fmt: skip
            except (UnitError, ValueError) as error:
                raise PredictionError(f"{path}: {item.path}: {error}") from None
            estimate = item.model.predict(
                values.astype(np.float32), sigmas.astype(np.float32), None, batch_size=batch_size
            )
            out[f"z_{item.name}"] = pa.array(estimate.z, pa.float32())
            out[f"z_{item.name}_err"] = pa.array(estimate.z_err, pa.float32())
            flag = getattr(estimate, "flag", None)  # models with a domain reference
            if flag is not None:
                out[f"z_{item.name}_flag"] = pa.array(flag, pa.uint16())
            for field, values in photoz_columns(estimate, item.name):
                out[field.name] = values
            records.append(
                {
                    "path": str(item.path), "name": item.name, "variant": str(item.model.variant),
                    "columns": fluxes, "unit": unit, "network_unit": working_unit(declared),
                    "state_dict_sha256": item.metadata.state_dict_sha256,
                }
            )  # fmt: skip
    record = {"checkpoints": records, "data": str(path), "n_rows": read.n_rows}
    result = pa.table(out)
    return result.replace_schema_metadata({METADATA_KEY: json.dumps(record).encode()})


def add_predict_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``predict`` arguments to ``parser`` (and make `main` its handler)."""
    parser.add_argument(
        "--checkpoint", type=Path, action="append", required=True, dest="checkpoints",
        help="trained checkpoint (repeat for several networks of one training run)",
    )  # fmt: skip
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--data", type=Path, help="the training-set folder they were trained on (its split)"
    )
    source.add_argument(
        "--table", type=Path,
        help="any Parquet, FITS or CSV table with the checkpoints' flux columns (all rows)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, required=True, help="predictions Parquet file")
    parser.add_argument(
        "--split", choices=_SPLITS, default="test", help="rows to predict (default test)"
    )
    parser.add_argument(
        "--no-baselines", action="store_true", help="skip the kNN and gradient-boosting baselines"
    )
    table = parser.add_argument_group("--table columns (default: those the checkpoint declares)")
    table.add_argument("--id-column", help="identifier column to copy (default galaxy_id or row)")
    table.add_argument("--flux-columns", help="flux columns: a '{band}' template or names")
    table.add_argument("--error-columns", help="flux-error columns: template or names")
    table.add_argument("--flux-unit", help="their unit: electron, nJy, uJy, ABmag, ...")
    table.add_argument("--redshift-column", help="true redshift to copy as 'redshift'")
    parser.add_argument("--batch-size", type=int, default=4096, help="rows per forward pass")
    parser.add_argument("--threads", type=positive_int, default=1, help="torch / baseline threads")
    parser.set_defaults(func=main)
    return parser


def main(args: argparse.Namespace) -> int:
    """Run ``predict`` for parsed ``args``: write the table atomically; returns 0."""
    from csst_photoz.io import write_parquet_atomic

    if args.table is not None:
        table = predict_table(
            args.checkpoints, args.table, flux_columns=args.flux_columns,
            error_columns=args.error_columns, flux_unit=args.flux_unit,
            id_column=args.id_column, redshift_column=args.redshift_column,
            batch_size=args.batch_size, n_threads=args.threads,
        )  # fmt: skip
        write_parquet_atomic(table, args.out)
        print(f"predicted {table.num_rows} rows of {args.table} -> {args.out}")
        return 0
    table = predict_split(
        args.checkpoints,
        args.data,
        split=args.split,
        baselines=() if args.no_baselines else ("knn", "gbr"),
        batch_size=args.batch_size,
        n_threads=args.threads,
    )
    write_parquet_atomic(table, args.out)
    from ..evaluation.columns import model_columns

    models = list(model_columns(table.column_names, truth_column="redshift"))
    print(
        f"predicted {table.num_rows} {args.split} galaxies with {', '.join(models)} -> {args.out}"
    )
    return 0
