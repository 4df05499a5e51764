"""p(z) as ``qp.Ensemble`` and qp HDF5 files, the exchange format of DESC tools (RAIL).

``qp`` is the ``qp-prob`` package, imported here only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .compact import dense_pz

__all__ = ["DEFAULT_EXPORT_GRID", "to_qp_ensemble", "write_qp"]

#: Bin edges of the exported ensembles: 400 bins of 0.01 over 0 <= z <= 4.
DEFAULT_EXPORT_GRID = np.linspace(0.0, 4.0, 401)


def _qp() -> Any:
    try:
        import qp
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("qp ensembles need the qp-prob package: pip install qp-prob") from error
    return qp


def to_qp_ensemble(
    codes: npt.ArrayLike,
    edges: npt.ArrayLike = DEFAULT_EXPORT_GRID,
    *,
    ancil: dict[str, npt.ArrayLike] | None = None,
) -> Any:
    """A ``qp.Ensemble`` of histograms on ``edges`` from compact p(z) codes.

    Parameters
    ----------
    codes
        (n, 100) compact p(z) (:func:`csst_photoz.pz.compact.encode_pz`).
    edges
        Bin edges of the histograms (`DEFAULT_EXPORT_GRID`).
    ancil
        Per-galaxy ancillary arrays (e.g. ``object_id``, ``zmode``), each of length n.

    Returns
    -------
    qp.Ensemble
        ``qp.hist`` parametrisation, densities normalised on ``edges``.
    """
    qp = _qp()
    edges = np.asarray(edges, dtype=np.float64)
    density = dense_pz(codes, edges) / np.diff(edges)[None, :]
    ensemble = qp.Ensemble(qp.hist, data={"bins": edges, "pdfs": density})
    if ancil:
        sizes = {name: len(np.asarray(value)) for name, value in ancil.items()}
        if any(size != ensemble.npdf for size in sizes.values()):
            raise ValueError(f"ancillary lengths {sizes} differ from the {ensemble.npdf} p(z)")
        ensemble.set_ancil({name: np.asarray(value) for name, value in ancil.items()})
    return ensemble


def write_qp(ensemble: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``ensemble`` to the qp HDF5 file ``path`` (atomically: temporary name, rename)."""
    target = Path(path)
    if target.suffix not in (".hdf5", ".h5"):
        raise ValueError(f"{target}: a qp HDF5 file needs the suffix .hdf5 or .h5")
    temporary = target.with_name(f".{target.stem}.tmp{target.suffix}")
    ensemble.write_to(str(temporary))
    os.replace(temporary, target)
    return target
