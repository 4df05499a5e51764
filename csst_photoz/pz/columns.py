"""The catalogue columns of one model's p(z), beside ``z_<m>``, ``z_<m>_err`` and ``z_<m>_flag``.

`photoz_columns` turns a :class:`~csst_photoz.models.PhotoZEstimate` with a p(z) into Arrow
fields and arrays (units and descriptions in the field metadata):

============================  =======================  ======================================
column                        type                     content
============================  =======================  ======================================
``z_<m>_mode``                float32                  centre of the most probable bin
``z_<m>_median``              float32                  redshift where the CDF reaches 1/2
``z_<m>_mean``                float32                  mean of the p(z)
``z_<m>_std``                 float32                  standard deviation of the p(z)
``z_<m>_odds``                float32                  probability within 0.06 (1 + mode) of
                                                       the mode
``z_<m>_pz``                  fixed_size_list<uint16>  compact p(z): 100 quantile codes, 200
                              [100]                    bytes (:mod:`csst_photoz.pz.compact`)
============================  =======================  ======================================

A model without a p(z) head (``estimate.pz`` None: every checkpoint written before p(z) heads)
adds no column. `compact_column` reads the codes back from a table.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from .compact import BYTES_PER_GALAXY, QUANTILE_LEVELS, Z_STEP, encode_pz
from .summary import ODDS_HALF_WIDTH, pz_summaries

__all__ = ["PZ_SUFFIX", "SUMMARY_SUFFIXES", "compact_column", "photoz_columns"]

#: Suffix of the compact p(z) column: ``z_<m>_pz``.
PZ_SUFFIX = "_pz"
_DESCRIPTIONS = {
    "mode": "mode of the p(z) of z_{m} (centre of the most probable bin)",
    "median": "median of the p(z) of z_{m}",
    "mean": "mean of the p(z) of z_{m}",
    "std": "standard deviation of the p(z) of z_{m}",
    "odds": f"probability within {ODDS_HALF_WIDTH} (1 + mode) of the mode of the p(z) of z_{{m}}",
}
#: Suffixes of the summary columns, ``z_<m>_<suffix>``.
SUMMARY_SUFFIXES = tuple(_DESCRIPTIONS)


def photoz_columns(estimate: Any, model_name: str) -> list[tuple[pa.Field, pa.Array]]:
    """The p(z) columns of one model, to append to a catalogue partition.

    Parameters
    ----------
    estimate
        A :class:`~csst_photoz.models.PhotoZEstimate` (``pz`` and ``pz_grid`` used).
    model_name
        The ``<m>`` of ``z_<m>``.

    Returns
    -------
    list of (pyarrow.Field, pyarrow.Array)
        The summary columns and ``z_<m>_pz`` (module docstring), or ``[]`` when the
        estimate has no p(z).
    """
    if estimate.pz is None:
        return []
    if estimate.pz_grid is None:
        raise ValueError(f"z_{model_name}: the estimate's p(z) comes without its grid")
    summaries = pz_summaries(estimate.pz, estimate.pz_grid)
    columns = [
        (
            pa.field(
                f"z_{model_name}_{name}",
                pa.float32(),
                metadata={"unit": "", "description": _DESCRIPTIONS[name].format(m=model_name)},
            ),
            pa.array(summaries[name].astype(np.float32), type=pa.float32()),
        )
        for name in SUMMARY_SUFFIXES
    ]
    codes = encode_pz(estimate.pz, estimate.pz_grid)
    list_type = pa.list_(pa.uint16(), QUANTILE_LEVELS.size)
    description = (
        f"compact p(z) of z_{model_name}: redshifts / {Z_STEP} at the cumulative levels "
        f"(k + 0.5) / {QUANTILE_LEVELS.size}, k = 0..{QUANTILE_LEVELS.size - 1} "
        f"({BYTES_PER_GALAXY} bytes); csst_photoz.pz.dense_pz / to_qp_ensemble read it"
    )
    values = pa.FixedSizeListArray.from_arrays(
        pa.array(codes.ravel(), pa.uint16()), QUANTILE_LEVELS.size
    )
    columns.append(
        (
            pa.field(
                f"z_{model_name}{PZ_SUFFIX}",
                list_type,
                metadata={"unit": "", "description": description},
            ),
            values,
        )
    )
    return columns


def compact_column(table: pa.Table, model_name: str) -> npt.NDArray[np.uint16]:
    """(n, 100) codes of ``z_<model_name>_pz`` in ``table`` (a clear error if it has none)."""
    name = f"z_{model_name}{PZ_SUFFIX}"
    if name not in table.column_names:
        have = sorted(
            c[2 : -len(PZ_SUFFIX)]
            for c in table.column_names
            if c.startswith("z_") and c.endswith(PZ_SUFFIX)
        )
        raise ValueError(f"no compact p(z) column {name!r}; models with one: {have}")
    column = table.column(name).combine_chunks()
    if column.null_count:
        raise ValueError(f"{name}: {column.null_count} rows have no p(z)")
    flat = column.flatten().to_numpy(zero_copy_only=False)
    return flat.reshape(len(column), QUANTILE_LEVELS.size).astype(np.uint16)
