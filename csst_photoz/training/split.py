"""Deterministic train / validation / test split of a table's rows by a seed.

The split is drawn over *all* rows of the table, before any selection, from nothing but the row
count, the seed and the fractions: a galaxy's assignment therefore never depends on which rows
a network's selection keeps, so the four networks trained on one table with one seed share one
test set (and hybrid transfer never trains on a test galaxy its MLP or CNN validated on). With
``n`` rows, ``round(n * test_fraction)`` go to the test set, ``round(rest *
validation_fraction)`` of the rest to validation, and the remainder to training; defaults of
0.25 and 0.1 give the paper's 10,000 / 3,000 / 27,000 for 40,000 galaxies. A test fraction
of 0 holds nothing back (every row trains or validates: for a table whose test set is another
file). `Split.summary` says how many rows each set got; ``csst-photoz train`` prints it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Split", "split_rows"]


@dataclass(frozen=True, eq=False)
class Split:
    """Disjoint, sorted row indices of a table's training, validation and test sets.

    Attributes
    ----------
    train, validation, test
        int64 row indices, ascending.
    seed
        The seed the split was drawn with.
    n_rows
        Rows of the table.
    """

    train: npt.NDArray[np.int64]
    validation: npt.NDArray[np.int64]
    test: npt.NDArray[np.int64]
    seed: int
    n_rows: int

    def fingerprint(self) -> str:
        """SHA-256 of the three index arrays: equal fingerprints mean equal splits."""
        digest = hashlib.sha256(f"{self.n_rows}".encode())
        for part in (self.train, self.validation, self.test):
            digest.update(b"|")
            digest.update(np.ascontiguousarray(part, dtype="<i8").tobytes())
        return digest.hexdigest()

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary for checkpoint metadata (how to redraw the split, and its hash)."""
        return {
            "seed": self.seed,
            "n_rows": self.n_rows,
            "n_train": int(self.train.size),
            "n_validation": int(self.validation.size),
            "n_test": int(self.test.size),
            "sha256": self.fingerprint(),
        }

    def summary(self) -> str:
        """One line: the rows in train / validation / test."""
        text = (
            f"split of {self.n_rows} rows (seed {self.seed}): {self.train.size} train / "
            f"{self.validation.size} validation / {self.test.size} test"
        )
        if self.test.size == 0:
            text += " (no test rows held back)"
        return text


def split_rows(
    n_rows: int,
    *,
    seed: int,
    test_fraction: float = 0.25,
    validation_fraction: float = 0.1,
) -> Split:
    """Split ``n_rows`` rows at random into training, validation and test sets.

    Parameters
    ----------
    n_rows
        Rows of the table.
    seed
        Seed of the permutation (``numpy.random.default_rng(seed)``).
    test_fraction
        Share of all rows for the test set, in [0, 1); 0 holds no test rows back.
    validation_fraction
        Share of the remaining rows for validation, in (0, 1).

    Returns
    -------
    Split

    Raises
    ------
    ValueError
        On fractions out of range, or too few rows for a non-empty training and validation set.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    n_test = round(n_rows * test_fraction)
    n_validation = round((n_rows - n_test) * validation_fraction)
    n_train = n_rows - n_test - n_validation
    if n_train < 1 or n_validation < 1:
        raise ValueError(
            f"{n_rows} rows give {n_train} training and {n_validation} validation rows "
            f"(test_fraction={test_fraction}, validation_fraction={validation_fraction}); "
            "need at least one of each"
        )
    order = np.random.default_rng(seed).permutation(n_rows).astype(np.int64)
    test = np.sort(order[:n_test])
    validation = np.sort(order[n_test : n_test + n_validation])
    train = np.sort(order[n_test + n_validation :])
    return Split(train=train, validation=validation, test=test, seed=int(seed), n_rows=n_rows)
