"""Reading and writing the project's files: catalogues (Parquet), with validation."""

from .parquet import read_parquet_table, write_parquet_atomic

__all__ = ["read_parquet_table", "write_parquet_atomic"]
