"""Photometry: detection, Kron-aperture fluxes and stamps.

For now the CPU reference built on sep (:mod:`.sep_kron`, the paper's recipe); the project's
own array-library agnostic (NumPy/CuPy) implementation will be tested against it.
"""

from .sep_kron import (
    FLAG_MIN_APERTURE,
    KRON_INTEGRATION_RADIUS,
    central_object,
    empty_photometry_table,
    measure_kron_photometry,
)

__all__ = [
    "FLAG_MIN_APERTURE",
    "KRON_INTEGRATION_RADIUS",
    "central_object",
    "empty_photometry_table",
    "measure_kron_photometry",
]
