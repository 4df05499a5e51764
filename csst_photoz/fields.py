"""The column convention of every Arrow table the package writes: unit and description.

Each field carries ``unit`` (an astropy-style unit string, ``""`` for dimensionless or
counts) and ``description`` in its metadata, so a Parquet file documents its own columns.
This module depends on pyarrow alone, so every layer (simulation, photometry, io) may use it.
"""

from __future__ import annotations

import pyarrow as pa

__all__ = ["described_field"]


def described_field(
    name: str, dtype: pa.DataType, unit: str, description: str, *, nullable: bool = True
) -> pa.Field:
    """An Arrow field with its ``unit`` and ``description`` in the field metadata.

    Parameters
    ----------
    name
        Column name.
    dtype
        Arrow type.
    unit
        Unit string (``""`` for none).
    description
        One line saying what the column holds.
    nullable
        Whether the column may hold nulls.

    Returns
    -------
    pyarrow.Field

    Examples
    --------
    >>> import pyarrow as pa
    >>> described_field("z_true", pa.float64(), "", "true redshift").metadata[b"description"]
    b'true redshift'
    """
    return pa.field(name, dtype, nullable, metadata={"unit": unit, "description": description})
