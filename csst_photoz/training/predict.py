"""Predictions of trained checkpoints on a split of their training set, for ``evaluate``.

`predict_split` loads one or more checkpoints written by `~csst_photoz.training.train_model`,
reloads the training-set folder they were trained on, redraws their train / validation / test
split from the seed and fractions recorded in each checkpoint, and predicts the chosen split's
galaxies that pass the training selection. Every checkpoint must come from the same data (its
recorded data hash) and the same split (the recomputed split's SHA-256 equals the recorded one,
and all checkpoints agree); anything else is refused with a `PredictionError` naming the file.
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
import functools
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..cli_options import positive_int
from ..pz.columns import photoz_columns
from ..threads import limit_threads

if TYPE_CHECKING:
    from ..io.checkpoint_metadata import CheckpointMetadata, TrainingRecord

__all__ = [
    "METADATA_KEY",
    "PredictionError",
    "add_predict_arguments",
    "checkpoint_training_set",
    "main",
    "predict_split",
    "predict_table",
]

#: Schema-metadata key of the JSON record written with the predictions.
METADATA_KEY = b"csst_photoz.predictions"
_SPLITS = ("test", "validation")
#: Recorded validation metrics a network must reproduce on data of another hash.
_REPRODUCED = ("loss", "sigma_nmad", "outlier_fraction", "nll")
_EXTRA_COLUMNS = ("galaxy_id", "mag_i")


class PredictionError(ValueError):
    """Checkpoints that cannot be applied to the data as asked (the message names the file)."""


@dataclass(frozen=True)
class _Loaded:
    path: Path
    model: Any
    metadata: CheckpointMetadata
    training: TrainingRecord
    name: str


def _column_name(variant: str) -> str:
    return variant.replace("-", "_")


def _unique(name: str, taken: set[str]) -> str:
    candidate, k = name, 2
    while candidate in taken:
        candidate, k = f"{name}_{k}", k + 1
    taken.add(candidate)
    return candidate


def _load_checkpoints(paths: Sequence[str | os.PathLike[str]]) -> list[_Loaded]:
    from csst_photoz.models.checkpoint import load_model

    if not paths:
        raise ValueError("predict needs at least one checkpoint")
    loaded, taken = [], {"true"}
    for entry in paths:
        path = Path(entry)
        model = load_model(path)
        metadata = model.checkpoint_metadata
        training = metadata.training
        if training is None:
            raise PredictionError(
                f"{path}: records no training data or split (not written by train_model): its "
                "test set cannot be reconstructed"
            )
        name = _unique(_column_name(str(model.variant)), taken)
        loaded.append(_Loaded(path, model, metadata, training, name))
    return loaded


def _declared_template(item: _Loaded, names: Sequence[str]) -> str:
    """The ``{band}`` template of the column names a checkpoint declares, one per band.

    The band may stand anywhere in the names (``flux_{band}``, ``mag_{band}_lsst``); where
    several templates fit every band, the one with ``{band}`` furthest right is taken.
    """
    bands = item.model.bands
    common: set[str] | None = None
    for name, band in zip(names, bands, strict=True):
        fits = {
            name[:i] + "{band}" + name[i + len(band) :]
            for i in range(len(name) - len(band) + 1)
            if name.startswith(band, i)
        }
        common = fits if common is None else common & fits
    if not common:
        raise PredictionError(
            f"{item.path}: declares input columns {list(names)}, not one name per band that "
            "differs only by the band ('flux_{band}', 'mag_{band}_lsst', ...)"
        )
    return max(common, key=lambda template: template.index("{band}"))


def _columns_of(loaded: Sequence[_Loaded]) -> Any:
    """The table columns to read: the declared flux inputs and the recorded redshift column."""
    from .config import DataColumns

    first = loaded[0]
    recorded = dict(first.training.config.get("columns") or {})
    reading = [item for item in loaded if item.metadata.inputs.fluxes]
    if reading:  # the flux columns the checkpoints declare
        inputs = reading[0].metadata.inputs
        recorded["flux"] = _declared_template(reading[0], inputs.flux_columns)
        recorded["flux_err"] = _declared_template(reading[0], inputs.error_columns)
    for other in reading[1:]:
        if other.metadata.inputs.fluxes != reading[0].metadata.inputs.fluxes:
            raise PredictionError(
                f"{other.path}: reads other table columns than {reading[0].path} "
                f"({other.metadata.inputs.flux_columns} vs "
                f"{reading[0].metadata.inputs.flux_columns})"
            )
    for other in loaded[1:]:
        if other.training.config.get("columns") != first.training.config.get("columns"):
            raise PredictionError(
                f"{other.path}: read other table columns than {first.path} "
                f"({other.training.config.get('columns')} vs "
                f"{first.training.config.get('columns')})"
            )
    return DataColumns.model_validate(recorded)


def _check_split(loaded: Sequence[_Loaded], data: Any) -> Any:
    """The split all checkpoints were trained with, recomputed and checked."""
    from .split import split_rows

    split, reference = None, None
    for item in loaded:
        info, config = item.training.split, item.training.config
        if info.n_rows != data.n_table_rows:
            raise PredictionError(
                f"{item.path}: split over {info.n_rows} rows, but {data.source} has "
                f"{data.n_table_rows}"
            )
        fractions = {k: config[k] for k in ("test_fraction", "validation_fraction") if k in config}
        mine = split_rows(info.n_rows, seed=info.seed, **fractions)
        if mine.fingerprint() != info.sha256:
            raise PredictionError(
                f"{item.path}: the split redrawn from its seed {info.seed} and fractions "
                f"{fractions} does not match its recorded fingerprint"
            )
        if item.training.data_hash != data.data_hash and not _reproduces_validation(
            item, data, mine
        ):
            raise PredictionError(
                f"{item.path}: trained on other data (hash {item.training.data_hash[:12]}...) "
                f"than {data.source} (hash {data.data_hash[:12]}...), and it does not reproduce "
                "its recorded validation metrics on this data"
            )
        if split is None:
            split, reference = mine, item
        elif mine.fingerprint() != split.fingerprint():
            raise PredictionError(
                f"{item.path}: trained on another train/validation/test split (seed "
                f"{info.seed}) than {reference.path}; predict them separately"
            )
    return split


def _reproduces_validation(item: _Loaded, data: Any, split: Any) -> bool:
    """Whether the network gives its recorded validation metrics on ``data``'s validation split.

    The data hash covers the table file's bytes, so a training set written again with the same
    values (the same seeds simulated by a later version, whose files carry other metadata)
    has another hash. The network's own predictions on the validation split (unclamped,
    uncalibrated, as training validated them) then reproduce the recorded MAE, sigma_NMAD,
    outlier fraction and NLL to 1e-5 relative only if the galaxies, inputs and redshifts are
    the same; such data is accepted, with a warning. A network trained under reduced precision
    (bfloat16 on a GPU) does not reproduce them on the CPU and needs the matching hash.
    """
    from .validation import validation_metrics

    recorded = item.metadata.validation_metrics
    keys = [k for k in _REPRODUCED if isinstance(recorded.get(k), int | float)]
    chosen = data.positions(split.validation)
    if not keys or chosen.size == 0:
        return False
    stamps = None
    if "stamps" in item.model.input_names:
        if data.stamps is not None:
            stamps = data.stamps[chosen]
        else:
            stamps = _stamps_for(item, data, data.rows[chosen], {})
    model, domain = item.model, item.model.domain
    model.set_domain(None)
    try:
        estimate = model.predict(data.fluxes[chosen], data.flux_errors[chosen], stamps, pz=False)
    finally:
        model.set_domain(domain)
    metrics = validation_metrics(
        data.redshift[chosen], estimate.z, np.log(estimate.z_err / model.sigma_scale)
    )
    same = all(np.isclose(metrics[k], recorded[k], rtol=1e-5, atol=1e-9) for k in keys)
    if same:
        warnings.warn(
            f"{item.path}: {data.source} has another data hash ({data.data_hash[:12]}... vs "
            f"the recorded {item.training.data_hash[:12]}...), but the network reproduces its "
            f"recorded validation {', '.join(keys)} on it to 1e-5: taken as its training set",
            stacklevel=3,
        )
    return bool(same)


def checkpoint_training_set(
    checkpoint: str | os.PathLike[str], data: str | os.PathLike[str]
) -> tuple[Any, Any, Any]:
    """A checkpoint's network, its training set and its split, checked against each other.

    Parameters
    ----------
    checkpoint
        A checkpoint written by ``train_model``.
    data
        The training set it was trained on (loaded with the inputs the network reads, stamps
        centre-cropped to the recorded ``stamp_size``).

    Returns
    -------
    model : PhotoZModel
        The network, with its metadata.
    dataset : TrainingSet
        The training set.
    split : Split
        The train / validation / test split redrawn from the recorded seed and fractions.

    Raises
    ------
    PredictionError
        If the checkpoint records no training, reads other bands, or was trained on other
        data (hash) or another split (fingerprint).
    """
    from .config import TrainingConfig
    from .data import load_training_set

    (item,) = _load_checkpoints([checkpoint])
    columns = _columns_of([item])
    stamp_size = TrainingConfig.model_validate(item.training.config).stamp_size
    dataset = load_training_set(
        data, columns=columns, stamps="stamps" in item.model.input_names, stamp_size=stamp_size
    )
    if tuple(item.model.bands) != tuple(dataset.bands):
        raise PredictionError(
            f"{item.path}: bands {list(item.model.bands)} differ from the data's "
            f"{list(dataset.bands)}"
        )
    return item.model, dataset, _check_split([item], dataset)


def _stamps_for(item: _Loaded, data: Any, table_rows: np.ndarray, cache: dict[int, Any]) -> Any:
    from csst_photoz.io.training_set import open_stamps

    from .data import centre_crop

    size = item.metadata.inputs.stamps.size
    if size not in cache:
        if not Path(data.source).is_dir():
            raise PredictionError(f"{item.path}: a stamp network needs a training-set folder")
        crop = functools.partial(centre_crop, size=size)
        cache[size] = open_stamps(data.source).read(table_rows, transform=crop)
    return cache[size]


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
    loaded = _load_checkpoints(checkpoints)
    columns = _columns_of(loaded)
    dataset = load_training_set(data, columns=columns, stamps=False)
    for item in loaded:
        if tuple(item.model.bands) != tuple(dataset.bands):
            raise PredictionError(
                f"{item.path}: bands {list(item.model.bands)} differ from the data's "
                f"{list(dataset.bands)}"
            )
    rows = _check_split(loaded, dataset)
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
                stamps = _stamps_for(item, dataset, table_rows, stamp_cache)
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
            column = _unique(_column_name(name), taken)
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
    item: _Loaded, flux_columns: Any, error_columns: Any, flux_unit: str | None
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
        name = _unique(_column_name(str(model.variant)), taken)
        loaded.append(_Loaded(Path(entry), model, metadata, metadata.training, name))
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
