"""The column grammar of prediction tables, and reading them for `evaluate`.

A prediction table (Parquet, as the catalogue contract writes it) holds the true redshift
(``z_true``, or a column named by the caller such as ``redshift``), per model ``z_<model>``
and optionally ``z_<model>_err`` (the Gaussian 1-sigma uncertainty) and ``z_<model>_flag`` (the
domain flag, :mod:`csst_photoz.models.domain`), and optionally a magnitude column. Every numeric
column named ``z_<model>`` other than ``z_true``, the truth column and the ``*_err`` and
``*_flag`` columns and the p(z) columns of a model (``z_<model>_mode``, ``_median``, ``_mean``,
``_std``, ``_odds``, ``_pz``: :mod:`csst_photoz.pz.columns`) is a model; a model's compact
p(z) (``z_<model>_pz``) is read too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "DEFAULT_TRUTH_COLUMNS",
    "ERROR_SUFFIX",
    "FLAG_SUFFIX",
    "PREDICTION_PREFIX",
    "PZ_SUFFIXES",
    "PredictionTable",
    "model_columns",
    "read_predictions",
]

#: Prefix of a model's prediction column.
PREDICTION_PREFIX = "z_"
#: Suffix of a model's uncertainty column.
ERROR_SUFFIX = "_err"
#: Suffix of a model's domain-flag column.
FLAG_SUFFIX = "_flag"
#: Suffixes of a model's p(z) columns (:mod:`csst_photoz.pz.columns`), never models.
PZ_SUFFIXES = ("_mode", "_median", "_mean", "_std", "_odds", "_pz")
#: Truth columns tried, in order, when none is named.
DEFAULT_TRUTH_COLUMNS = ("z_true", "redshift")


def model_columns(
    column_names: Iterable[str],
    *,
    truth_column: str = "z_true",
    models: Sequence[str] | None = None,
) -> dict[str, tuple[str, str | None]]:
    """Find the models of a table from its column names.

    Parameters
    ----------
    column_names : iterable of str
        The table's columns.
    truth_column : str, optional
        The true-redshift column (never a model). Default ``"z_true"``.
    models : sequence of str, optional
        Only these models (each must have its ``z_<model>`` column); default all.

    Returns
    -------
    dict
        ``{model: (prediction column, uncertainty column or None)}`` in column order.

    Raises
    ------
    ValueError
        If a requested model has no column, or no model is found.

    """
    names = list(column_names)
    present = set(names)
    excluded = {truth_column, "z_true"}
    found: dict[str, tuple[str, str | None]] = {}
    for name in names:
        if (
            not name.startswith(PREDICTION_PREFIX)
            or name.endswith((ERROR_SUFFIX, FLAG_SUFFIX))
            or (name.endswith(PZ_SUFFIXES) and name.rsplit("_", 1)[0] in present)
            or name in excluded
            or len(name) == len(PREDICTION_PREFIX)
        ):
            continue
        error = name + ERROR_SUFFIX
        found[name[len(PREDICTION_PREFIX) :]] = (name, error if error in present else None)
    if models is not None:
        missing = [m for m in models if m not in found]
        if missing:
            raise ValueError(
                f"no prediction column for model(s) {missing}; found models {sorted(found)}"
            )
        found = {m: found[m] for m in models}
    if not found:
        raise ValueError(
            f"no model prediction columns ({PREDICTION_PREFIX}<model>) among the columns {names}"
        )
    return found


@dataclass(frozen=True)
class PredictionTable:
    """Arrays read from a prediction table, ready for `evaluate`.

    Attributes
    ----------
    z_true : numpy.ndarray
        True redshifts (rows without a finite truth dropped).
    predictions : dict
        ``{model: (z_pred, sigma or None)}``.
    magnitude : numpy.ndarray or None
        The magnitude column, if one was requested.
    truth_column : str
        The column the truth came from.
    n_dropped : int
        Rows dropped for a missing (null, NaN or infinite) true redshift.
    pz : dict
        ``{model: (n, 100) compact p(z) codes}`` of the models with a ``z_<model>_pz`` column.

    """

    z_true: np.ndarray
    predictions: dict[str, tuple[np.ndarray, np.ndarray | None]]
    magnitude: np.ndarray | None
    truth_column: str
    n_dropped: int
    pz: dict[str, np.ndarray] = field(default_factory=dict)


def _float_column(table: pa.Table, name: str, path: Path) -> np.ndarray:
    column = table[name]
    if not (pa.types.is_floating(column.type) or pa.types.is_integer(column.type)):
        raise ValueError(f"{path}: column {name!r} must be numeric, it is {column.type}")
    return np.asarray(pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False), np.float64)


def read_predictions(
    path: str | Path,
    *,
    truth_column: str | None = None,
    magnitude_column: str | None = None,
    models: Sequence[str] | None = None,
) -> PredictionTable:
    """Read a Parquet prediction table into arrays (nulls become NaN).

    Parameters
    ----------
    path : str or pathlib.Path
        The Parquet file.
    truth_column : str, optional
        The true-redshift column; default the first of `DEFAULT_TRUTH_COLUMNS` present.
    magnitude_column : str, optional
        A magnitude column for the metrics in magnitude bins.
    models : sequence of str, optional
        Only these models; default every ``z_<model>`` column.

    Returns
    -------
    PredictionTable

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If it is not Parquet, a named column is missing or not numeric, no model is found,
        or no row has a finite truth.

    """
    from csst_photoz.io import read_parquet_table

    path = Path(path)
    required = [c for c in (truth_column, magnitude_column) if c is not None]
    table = read_parquet_table(path, required_columns=required)
    if truth_column is None:
        truth_column = next((c for c in DEFAULT_TRUTH_COLUMNS if c in table.column_names), None)
        if truth_column is None:
            raise ValueError(
                f"{path} has none of the truth columns {list(DEFAULT_TRUTH_COLUMNS)}; "
                "name one with --truth-column"
            )
    columns = model_columns(table.column_names, truth_column=truth_column, models=models)
    truth = _float_column(table, truth_column, path)
    keep = np.isfinite(truth)
    if not keep.any():
        raise ValueError(f"{path}: no row has a finite true redshift in {truth_column!r}")
    predictions, pz = {}, {}
    for model, (z_name, err_name) in columns.items():
        z_pred = _float_column(table, z_name, path)[keep]
        sigma = None if err_name is None else _float_column(table, err_name, path)[keep]
        predictions[model] = (z_pred, sigma)
        if f"{z_name}_pz" in table.column_names:
            from csst_photoz.pz.columns import compact_column

            pz[model] = compact_column(table, model)[keep]
    magnitude = (
        None if magnitude_column is None else _float_column(table, magnitude_column, path)[keep]
    )
    return PredictionTable(
        z_true=truth[keep],
        predictions=predictions,
        magnitude=magnitude,
        truth_column=truth_column,
        n_dropped=int((~keep).sum()),
        pz=pz,
    )
