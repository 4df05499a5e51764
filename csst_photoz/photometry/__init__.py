"""Photometry: detection, Kron-aperture fluxes and stamps.

For now the CPU reference built on sep (the paper's recipe); the project's own array-library
agnostic (NumPy/CuPy) implementation will be tested against it.
"""

from .kron_reference import central_object, measure_kron_photometry

__all__ = ["central_object", "measure_kron_photometry"]
