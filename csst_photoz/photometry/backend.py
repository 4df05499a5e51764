"""The array library of an input: NumPy on CPU workers, CuPy on GPU workers.

Every photometry kernel takes its array module from its input (``xp = array_module(image)``)
so one implementation serves both; CuPy is imported only when a CuPy array is actually passed,
never at package import time.
"""

from __future__ import annotations

from functools import cache
from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["array_module", "is_cupy", "ndimage_module", "to_numpy"]


def is_cupy(array: Any) -> bool:
    """True if ``array`` is a CuPy array (checked without importing CuPy)."""
    return type(array).__module__.split(".")[0] == "cupy"


def array_module(*arrays: Any) -> ModuleType:
    """``cupy`` if any argument is a CuPy array, else ``numpy``.

    Parameters
    ----------
    *arrays
        Arrays (or anything else; non-arrays are ignored).

    Returns
    -------
    module
        The array namespace to compute with.
    """
    if any(is_cupy(array) for array in arrays):
        import cupy

        return cupy
    return np


@cache
def ndimage_module(xp: ModuleType) -> ModuleType:
    """``scipy.ndimage`` for NumPy, ``cupyx.scipy.ndimage`` for CuPy."""
    if xp is np:
        import scipy.ndimage

        return scipy.ndimage
    import cupyx.scipy.ndimage

    return cupyx.scipy.ndimage


def to_numpy(array: Any) -> np.ndarray:
    """A NumPy copy (or view) of a NumPy or CuPy array: the one device-to-host transfer."""
    if is_cupy(array):
        return array.get()
    return np.asarray(array)
